"""Celery tasks: the same functions the embedded runner calls, under the same names."""

from __future__ import annotations

from typing import Any

from celery import Task

from app.background import TASKS, resolve
from workers.celery_app import celery_app

_RETRY = {
    "autoretry_for": (Exception,),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 8,
}


def _register(name: str) -> Task:  # type: ignore[type-arg]
    def run(**kwargs: Any) -> Any:
        return resolve(name)(**kwargs)

    run.__name__ = name.replace(".", "_")
    run.__qualname__ = run.__name__
    return celery_app.task(name=name, **_RETRY)(run)  # type: ignore[no-any-return]


registered = {name: _register(name) for name in TASKS}
