"""The periodic export-schedule task: one unit of work per due slot, so one bad slot stops no other."""

from __future__ import annotations

import logging
from datetime import datetime

from app.db.base import utcnow
from app.db.session import get_database
from app.schedules import service
from app.tasks import task

log = logging.getLogger(__name__)


# No retry (the default policy): the next tick, REAL_EXPORT_SCHEDULE_CHECK_SECONDS later, is the retry.
@task("exports.run_schedules")
def run_schedules(now: datetime | None = None) -> list[str]:
    """Queue one export for every due schedule of an active project; the ids of the exports created."""
    now = now or utcnow()
    db = get_database()
    with db.session() as session:
        due = service.due(session, now)
    created: list[str] = []
    for project_id, revision, due_at in due:
        try:
            with db.session() as session:
                export_id = service.run_due(session, project_id, revision=revision, due_at=due_at, now=now)
        except Exception:
            # Rolled back: the slot stays due and the next run tries again; other projects go on.
            log.exception("exports.schedule_failed", extra={"project_id": str(project_id)})
            continue
        if export_id is not None:
            created.append(str(export_id))
    if created:
        log.info("exports.scheduled", extra={"exports": created})
    return created
