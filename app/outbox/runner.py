"""Running a task under its outbox row: both runners (Celery, the embedded thread) call ``run_task``."""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from app.config import get_settings
from app.db.base import utcnow
from app.outbox import service
from app.tasks import TaskSpec

log = logging.getLogger(__name__)


def run_task(spec: TaskSpec, kwargs: dict[str, Any], attempt: int, *, heartbeat: bool) -> Any:
    """Run one attempt of a task. A task sent after a commit (its kwargs name an outbox row) runs only if
    it takes the row (else it is a duplicate and is dropped), with a heartbeat thread when ``heartbeat``
    (Celery: a killed worker stops beating; the embedded runner's single thread needs none); the row is
    handed back when a retry follows, and removed when the task is over."""
    row = kwargs.get(service.KEY)
    if row is None:
        return spec.run(kwargs, attempt)
    own = {k: v for k, v in kwargs.items() if k != service.KEY}
    from app.db.session import get_database

    db = get_database()
    with db.session() as session:
        hold = service.claim(session, uuid.UUID(str(row)), utcnow())
    if hold is None:
        log.info("task.duplicate_dropped", extra={"task": spec.name, "outbox_id": row})
        return None
    beating = (
        service.Heartbeat(db.session_factory, hold, get_settings().outbox_heartbeat_seconds)
        if heartbeat
        else nullcontext()
    )
    try:
        with beating:
            result = spec.run(own, attempt)
    except Exception as exc:
        try:
            with db.session() as session:
                if spec.retry.retries(exc, attempt):
                    due = utcnow() + timedelta(seconds=spec.retry.max_delay(attempt))
                    service.hand_back(session, hold, due)
                else:
                    service.finish(session, hold)
        except Exception:
            # The database is away too: the row goes stale and outbox.relay sends the task again.
            log.warning("outbox.release_failed", extra={"task": spec.name, "outbox_id": row})
        raise
    with db.session() as session:
        service.finish(session, hold)
    return result
