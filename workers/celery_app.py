"""The Celery app (production deployment); its tasks are the registry's (app/tasks.py, workers/tasks.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from app.background import DEFAULT_QUEUE, periodic_tasks, routes
from app.config import get_settings
from app.outbox.service import RELAY_TASK

log = logging.getLogger(__name__)

settings = get_settings()
celery_app = Celery(
    "real-align", broker=settings.broker_url or "redis://127.0.0.1:6379/0", include=["workers.tasks"]
)
celery_app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=DEFAULT_QUEUE,
    task_routes=routes(),
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # outbox.relay runs in the beat process itself (workers/relay.py), never queued behind long tasks.
    beat_schedule={
        name: {"task": name, "schedule": interval}
        for name, interval in periodic_tasks()
        if name != RELAY_TASK
    },
    timezone="UTC",
)


@worker_init.connect  # type: ignore[untyped-decorator]  # celery has no type information
def _before_fork(**_kwargs: Any) -> None:
    # Import torch and sentence-transformers once, in the main process, before the pool forks: each child
    # then only loads the weights (about 1 s) instead of importing them itself, all children at once (22-26 s
    # on a busy 2-core machine), so a restarted worker takes work again seconds sooner. Only imports: no
    # model and no thread pool exist before the fork.
    if celery_app.conf.get("preload_embedding_model"):
        import sentence_transformers  # noqa: F401

        log.info("embeddings.libraries_imported")


@worker_process_init.connect  # type: ignore[untyped-decorator]  # celery has no type information
def _after_fork(**_kwargs: Any) -> None:
    # Pooled connections must not cross fork(); each child opens its own.
    from app.db.session import reset_database

    reset_database()
    # Set by `real-align worker` when this worker consumes the embeddings queue: load the model once, now.
    if celery_app.conf.get("preload_embedding_model"):
        from app.embeddings.embedder import get_embedder

        get_embedder(settings.embedding_model)
        log.info("embeddings.model_loaded", extra={"model": settings.embedding_model})
