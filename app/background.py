"""Where tasks run: Celery workers when a broker is configured, else one thread in this process.

The tasks themselves, their names, queues and retry policies are in the registry (``app/tasks.py``, fed by
``app/<domain>/tasks.py``); ``workers/tasks.py`` registers the same entries with Celery, so both deployments
run identical code with identical retries.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from app import logging as logcontext
from app.config import get_settings
from app.outbox.runner import run_task
from app.tasks import DEFAULT_QUEUE, TaskSpec, registry, spec

__all__ = [
    "DEFAULT_QUEUE",
    "EmbeddedRunner",
    "dispatch",
    "get_runner",
    "periodic_tasks",
    "queue_for",
    "resolve",
    "routes",
]

log = logging.getLogger(__name__)


def queue_for(task_name: str) -> str:
    """The Celery queue a task is routed to."""
    return spec(task_name).queue


def routes() -> dict[str, dict[str, str]]:
    """Celery's task_routes: the tasks that do not go to the default queue."""
    return {name: {"queue": s.queue} for name, s in sorted(registry().items()) if s.queue != DEFAULT_QUEUE}


def resolve(task_name: str) -> Callable[..., Any]:
    """The function behind a task name."""
    return spec(task_name).function


def periodic_tasks() -> list[tuple[str, float]]:
    """(task name, interval in seconds) for everything that runs on a schedule."""
    settings = get_settings()
    return [
        ("maintenance.reconcile", settings.reconcile_interval_seconds),
        ("outbox.relay", settings.outbox_relay_interval_seconds),
        ("quality.aggregate_stale", settings.quality_aggregate_interval_seconds),
        ("neighbors.sweep_redundant", settings.redundant_sweep_interval_seconds),
        ("exports.run_schedules", settings.export_schedule_check_seconds),
        ("webhooks.sweep", settings.webhook_sweep_interval_seconds),
    ]


def dispatch(task_name: str, kwargs: dict[str, Any]) -> bool:
    """Send a task now (called after commit); False when the send failed (logged: a task sent after a
    commit is sent again by outbox.relay, other work by maintenance.reconcile)."""
    queue_name = queue_for(task_name)  # KeyError for an unknown name, before anything is sent
    settings = get_settings()
    if settings.embedded_tasks:
        get_runner().submit(task_name, kwargs)
        return True
    try:
        _celery_sender().send_task(task_name, kwargs=kwargs, queue=queue_name)
    except Exception as exc:
        log.warning("task.send_failed", extra={"task": task_name, "error": repr(exc)[:300]})
        return False
    return True


def queue_is_empty(task_name: str) -> bool | None:
    """Whether nothing waits to be taken where ``task_name`` is sent: the embedded runner's queue, or the
    broker's queue of the task (None when the broker cannot be asked)."""
    if get_settings().embedded_tasks:
        return not get_runner().has_queued(task_name)
    from kombu.exceptions import ChannelError

    try:
        with _celery_sender().connection_for_read() as connection:
            connection.ensure_connection(max_retries=1)
            try:
                declared = connection.default_channel.queue_declare(queue=queue_for(task_name), passive=True)
            except ChannelError:
                return True  # no such queue: nothing was ever left in it
            return bool(declared.message_count == 0)
    except Exception:
        return None


_sender: Any = None
_sender_lock = threading.Lock()


def _celery_sender() -> Any:
    global _sender
    with _sender_lock:
        if _sender is None:
            from celery import Celery

            settings = get_settings()
            _sender = Celery("real-align-sender", broker=settings.broker_url)
            _sender.conf.broker_connection_retry_on_startup = True
            _sender.conf.broker_transport_options = {"max_retries": 2}
        return _sender


class EmbeddedRunner:
    """One background thread that runs tasks and schedules in-process (the embedded default).

    A task that fails with one of its policy's transient errors is run again after the policy's delay (the
    same attempts and delays as on Celery); meanwhile the thread runs other tasks. ``retry_delay_scale``
    multiplies those delays (tests set 0).
    """

    def __init__(self, retry_delay_scale: float = 1.0) -> None:
        self.retry_delay_scale = retry_delay_scale
        # (task name, kwargs, the sender's log context: app/logging.task_headers)
        self._queue: queue.Queue[tuple[str, dict[str, Any], dict[str, str]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Tasks submitted and not finished: queued, running, or waiting for a retry.
        self._outstanding = 0
        self._next_due: dict[str, float] = {}
        # (when, tie-breaker, task name, kwargs, attempt number, sender's context): retries waiting.
        self._retries: list[tuple[float, int, str, dict[str, Any], int, dict[str, str]]] = []
        self._order = itertools.count()

    def start(self) -> None:
        """Start the thread if it is not running."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._loop, name="real-align-tasks", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the task in hand; queued tasks and waiting retries are left (the reconciler re-sends
        pending work)."""
        self._stopping.set()
        self._queue.put(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        self._queue = queue.Queue()
        self._retries = []
        with self._lock:
            self._outstanding = 0

    def submit(self, task_name: str, kwargs: dict[str, Any]) -> None:
        """Queue a task for the thread."""
        with self._lock:
            self._outstanding += 1
        self._queue.put((task_name, kwargs, logcontext.task_headers()))
        self.start()

    def has_queued(self, task_name: str) -> bool:
        """Whether a task of this name waits in the queue (not counting the one running)."""
        with self._queue.mutex:
            return any(item is not None and item[0] == task_name for item in self._queue.queue)

    def idle(self) -> bool:
        """True when nothing is queued, running or waiting to be retried."""
        with self._lock:
            return self._outstanding == 0

    def _loop(self) -> None:
        now = time.monotonic()
        for name, interval in periodic_tasks():
            self._next_due.setdefault(name, now + min(interval, 5.0))
        while not self._stopping.is_set():
            wake = min([*self._next_due.values(), *(r[0] for r in self._retries[:1])], default=now + 1.0)
            timeout = max(0.0, wake - time.monotonic())
            try:
                item = self._queue.get(timeout=min(timeout, 1.0))
            except queue.Empty:
                item = None
            if item is not None:
                name, kwargs, headers = item
                self._run(name, kwargs, headers=headers)
            while self._retries and self._retries[0][0] <= time.monotonic() and not self._stopping.is_set():
                _when, _order, name, kwargs, attempt, headers = heapq.heappop(self._retries)
                self._run(name, kwargs, attempt, headers)
            now = time.monotonic()
            for name, interval in periodic_tasks():
                if now >= self._next_due.get(name, now):
                    self._next_due[name] = now + interval
                    with self._lock:
                        self._outstanding += 1
                    self._run(name, {})

    def _run(
        self, task_name: str, kwargs: dict[str, Any], attempt: int = 1, headers: dict[str, str] | None = None
    ) -> None:
        retrying = False
        try:
            with logcontext.task_scope(task_name, None, kwargs, headers):  # its lines name task and request
                try:
                    retrying = self._attempt(spec(task_name), kwargs, attempt, headers or {})
                except Exception:
                    log.exception("task.failed", extra={"attempt": attempt})
        finally:
            if not retrying:  # a task waiting for its retry is still outstanding
                with self._lock:
                    self._outstanding -= 1

    def _attempt(self, task: TaskSpec, kwargs: dict[str, Any], attempt: int, headers: dict[str, str]) -> bool:
        """Run one attempt; True if it failed and its retry is scheduled."""
        try:
            run_task(task, kwargs, attempt, heartbeat=False)
            return False
        except Exception as exc:
            if self._stopping.is_set() or not task.retry.retries(exc, attempt):
                raise
            delay = task.retry.delay(attempt) * self.retry_delay_scale
            log.warning(
                "task.retrying",
                extra={"task": task.name, "attempt": attempt, "delay_s": delay, "error": repr(exc)[:500]},
            )
            when = time.monotonic() + delay
            heapq.heappush(self._retries, (when, next(self._order), task.name, kwargs, attempt + 1, headers))
            return True


_runner = EmbeddedRunner()


def get_runner() -> EmbeddedRunner:
    """The process's embedded runner."""
    return _runner
