"""Celery tasks: every entry of the registry (app/tasks.py), under its name, with its own retry policy."""

from __future__ import annotations

from typing import Any

from celery import Task

from app.outbox.runner import run_task
from app.tasks import TaskSpec, registry
from workers.celery_app import celery_app


def _register(spec: TaskSpec) -> Task:  # type: ignore[type-arg]
    def run(self: Task, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        # Celery counts retries from 0; the registry counts attempts from 1.
        # A task sent after a commit runs under its outbox row (claimed, beating, handed back or finished).
        return run_task(spec, kwargs, self.request.retries + 1, heartbeat=True)

    run.__name__ = spec.name.replace(".", "_")
    run.__qualname__ = run.__name__
    # autoretry_for holds the task's transient errors only: anything else fails the task at once.
    return celery_app.task(name=spec.name, bind=True, **spec.retry.celery_options())(run)  # type: ignore[no-any-return]


registered = {name: _register(spec) for name, spec in registry().items()}
