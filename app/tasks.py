"""The task registry: every background task's name, entry point, queue and retry policy, in one place.

Each domain declares its tasks in ``app/<domain>/tasks.py`` with ``@task(name, retry=..., queue=...)``: the
entry point opens its units of work and calls the domain's service. Both runners read this registry, so they
run the same function under the same name with the same policy: ``workers/tasks.py`` registers each entry
with Celery (``autoretry_for`` its transient errors only, ``max_retries``, backoff, jitter) and the embedded
runner (``app/background.py``) retries with the same attempts and the same delays.

The per-domain modules are imported on first use (``registry()``), not here: the API loads them to send a
task, so none of them may import torch at import time.
"""

from __future__ import annotations

import importlib
import inspect
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from sqlalchemy import exc as sa_exc

from app import metrics

DEFAULT_QUEUE = "default"

TASK_MODULES = (
    "app.active.tasks",
    "app.embeddings.tasks",
    "app.exports.tasks",
    "app.maintenance.tasks",
    "app.neighbors.tasks",
    "app.outbox.tasks",
    "app.quality.tasks",
    "app.schedules.tasks",
    "app.simulation.tasks",
    "app.webhooks.tasks",
)

# A database that restarts, fails over, drops idle connections or runs out of pool slots: the same call
# succeeds a few seconds later. SQLAlchemy wraps driver errors raised through it (OperationalError,
# InterfaceError); psycopg's own is for a raw connection; TimeoutError is the pool's checkout timeout.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    psycopg.OperationalError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a task is tried and which errors are worth another try (any other error fails at once)."""

    max_attempts: int = 1
    # Seconds: the wait before attempt n+1 is min(backoff_max, backoff * 2**(n-1)), drawn uniformly from
    # 0 to that with jitter (Celery's retry_backoff, which takes whole seconds).
    backoff: int = 2
    backoff_max: int = 120
    jitter: bool = True
    transient: tuple[type[BaseException], ...] = ()

    def retries(self, error: BaseException, attempt: int) -> bool:
        """True when attempt number ``attempt`` (1-based) that raised ``error`` is followed by another."""
        return attempt < self.max_attempts and isinstance(error, self.transient)

    def max_delay(self, attempt: int) -> int:
        """The longest wait after failed attempt number ``attempt`` (the countdown before jitter)."""
        return int(min(self.backoff_max, self.backoff * 2 ** (attempt - 1)))

    def delay(self, attempt: int) -> int:
        """Seconds to wait after failed attempt number ``attempt``; the same as Celery's autoretry."""
        countdown = self.max_delay(attempt)
        return random.randrange(countdown + 1) if self.jitter else countdown

    def celery_options(self) -> dict[str, Any]:
        """The Celery task options that implement this policy."""
        return {
            "autoretry_for": self.transient,
            "max_retries": self.max_attempts - 1,
            "retry_backoff": self.backoff,
            "retry_backoff_max": self.backoff_max,
            "retry_jitter": self.jitter,
        }


# Periodic tasks: the next tick is the retry, and a retry would only pile onto it.
NO_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Attempt:
    """Which try this is, for a task that must know whether a failure is final (it declares ``attempt``)."""

    number: int
    policy: RetryPolicy

    def will_retry(self, error: BaseException) -> bool:
        """True when the runner tries again after this error: leave the work to it, record no failure."""
        return self.policy.retries(error, self.number)


# A task called directly (a test, the CLI) has no runner behind it: its first attempt is its last.
ONLY_ATTEMPT = Attempt(1, NO_RETRY)


@dataclass(frozen=True)
class TaskSpec:
    """One registered task."""

    name: str
    function: Callable[..., Any]
    retry: RetryPolicy
    queue: str
    takes_attempt: bool

    @classmethod
    def of(
        cls, name: str, function: Callable[..., Any], *, retry: RetryPolicy, queue: str = DEFAULT_QUEUE
    ) -> TaskSpec:
        takes_attempt = "attempt" in inspect.signature(function).parameters
        return cls(name, function, retry, queue, takes_attempt)

    def run(self, kwargs: dict[str, Any], attempt: int = 1) -> Any:
        """Call the entry point for attempt number ``attempt`` (1-based), counted by outcome (both runners
        come here): success, retry (its policy tries again) or failure (app/metrics.py)."""
        try:
            if self.takes_attempt:
                result = self.function(**kwargs, attempt=Attempt(attempt, self.retry))
            else:
                result = self.function(**kwargs)
        except Exception as exc:
            metrics.TASKS.labels(self.name, "retry" if self.retry.retries(exc, attempt) else "failure").inc()
            raise
        metrics.TASKS.labels(self.name, "success").inc()
        return result


_registry: dict[str, TaskSpec] = {}
_loaded = False
_lock = threading.RLock()

F = TypeVar("F", bound=Callable[..., Any])


def task(name: str, *, retry: RetryPolicy = NO_RETRY, queue: str = DEFAULT_QUEUE) -> Callable[[F], F]:
    """Register the decorated function as the task ``name``; the function itself is returned unchanged."""

    def register(function: F) -> F:
        with _lock:
            known = _registry.get(name)
            if known is not None and known.function.__qualname__ != function.__qualname__:
                raise ValueError(f"task {name!r} is registered twice")
            _registry[name] = TaskSpec.of(name, function, retry=retry, queue=queue)
        return function

    return register


def registry() -> dict[str, TaskSpec]:
    """Every task by name (the per-domain modules are imported on the first call)."""
    global _loaded
    if not _loaded:
        with _lock:
            if not _loaded:
                for module in TASK_MODULES:
                    importlib.import_module(module)
                _loaded = True
    return _registry


def spec(name: str) -> TaskSpec:
    """The task registered as ``name``; KeyError if there is none."""
    return registry()[name]
