"""Where tasks run: Celery workers when a broker is configured, else one thread in this process.

Task functions live in ``app`` and take JSON-able keyword arguments; ``workers/`` wraps the same
functions as Celery tasks under the same names, so both deployments run identical code.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from app.config import get_settings

log = logging.getLogger(__name__)

# Task name → "module:function". The names are the Celery task names too.
TASKS: dict[str, str] = {
    "embeddings.embed_prompts": "app.embeddings.service:embed_prompts",
    "embeddings.embed_texts": "app.embeddings.service:embed_texts",
    "exports.run_export": "app.exports.service:run_export",
    "exports.run_schedules": "app.schedules.service:run_schedules",
    "maintenance.reconcile": "app.maintenance:reconcile",
    "neighbors.build_index": "app.neighbors.service:build_index",
    "neighbors.mark_redundant": "app.neighbors.redundancy:mark_redundant",
    "neighbors.sweep_redundant": "app.neighbors.redundancy:sweep_redundant",
    "quality.aggregate": "app.quality.service:aggregate_project",
    "quality.aggregate_stale": "app.quality.service:aggregate_stale",
    "webhooks.deliver": "app.webhooks.service:deliver",
    "webhooks.sweep": "app.webhooks.service:sweep",
}
QUEUES: dict[str, str] = {"embeddings.embed_prompts": "embeddings", "embeddings.embed_texts": "embeddings"}
DEFAULT_QUEUE = "default"


def queue_for(task_name: str) -> str:
    """The Celery queue a task is routed to."""
    return QUEUES.get(task_name, DEFAULT_QUEUE)


def resolve(task_name: str) -> Callable[..., Any]:
    """The function behind a task name."""
    module_name, _, attr = TASKS[task_name].partition(":")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def periodic_tasks() -> list[tuple[str, float]]:
    """(task name, interval in seconds) for everything that runs on a schedule."""
    settings = get_settings()
    return [
        ("maintenance.reconcile", settings.reconcile_interval_seconds),
        ("quality.aggregate_stale", settings.quality_aggregate_interval_seconds),
        ("neighbors.sweep_redundant", settings.redundant_sweep_interval_seconds),
        ("exports.run_schedules", settings.export_schedule_check_seconds),
        ("webhooks.sweep", settings.webhook_sweep_interval_seconds),
    ]


def dispatch(task_name: str, kwargs: dict[str, Any]) -> None:
    """Send a task now (called after commit). A failed send is logged; the reconciler picks the work up."""
    if task_name not in TASKS:
        raise KeyError(task_name)
    settings = get_settings()
    if settings.embedded_tasks:
        get_runner().submit(task_name, kwargs)
        return
    try:
        _celery_sender().send_task(task_name, kwargs=kwargs, queue=queue_for(task_name))
    except Exception:
        # The rows are committed; maintenance.reconcile re-sends work that stays pending.
        log.exception("task.send_failed", extra={"task": task_name})


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
    """One background thread that runs tasks and schedules in-process (the embedded default)."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._busy = 0
        self._next_due: dict[str, float] = {}

    def start(self) -> None:
        """Start the thread if it is not running."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(target=self._loop, name="real-align-tasks", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the task in hand; queued tasks are left (the reconciler re-sends pending work)."""
        self._stopping.set()
        self._queue.put(None)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None
        self._queue = queue.Queue()

    def submit(self, task_name: str, kwargs: dict[str, Any]) -> None:
        """Queue a task for the thread."""
        self._queue.put((task_name, kwargs))
        self.start()

    def idle(self) -> bool:
        """True when nothing is queued or running."""
        return self._queue.empty() and self._busy == 0

    def _loop(self) -> None:
        now = time.monotonic()
        for name, interval in periodic_tasks():
            self._next_due.setdefault(name, now + min(interval, 5.0))
        while not self._stopping.is_set():
            timeout = max(0.0, min(self._next_due.values(), default=now + 1.0) - time.monotonic())
            try:
                item = self._queue.get(timeout=min(timeout, 1.0))
            except queue.Empty:
                item = None
            if item is not None:
                self._run(*item)
            now = time.monotonic()
            for name, interval in periodic_tasks():
                if now >= self._next_due.get(name, now):
                    self._next_due[name] = now + interval
                    self._run(name, {})

    def _run(self, task_name: str, kwargs: dict[str, Any]) -> None:
        self._busy += 1
        try:
            for attempt in range(3):
                try:
                    resolve(task_name)(**kwargs)
                    return
                except Exception:
                    log.exception("task.failed", extra={"task": task_name, "attempt": attempt + 1})
                    if self._stopping.is_set():
                        return
                    time.sleep(0.5 * 2**attempt)
        finally:
            self._busy -= 1


_runner = EmbeddedRunner()


def get_runner() -> EmbeddedRunner:
    """The process's embedded runner."""
    return _runner
