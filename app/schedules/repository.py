"""Export schedule queries: the due schedules, and the compare-and-set that takes a due slot."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.projects.models import Project, ProjectStatus
from app.schedules.models import ExportSchedule


def due(session: Session, now: datetime, limit: int = 500) -> list[tuple[uuid.UUID, int, datetime]]:
    """(project id, revision, next_run_at) of schedules due by `now` in active projects, oldest due first."""
    rows = session.execute(
        select(ExportSchedule.project_id, ExportSchedule.revision, ExportSchedule.next_run_at)
        .join(Project, Project.id == ExportSchedule.project_id)
        .where(ExportSchedule.next_run_at <= now, Project.status == ProjectStatus.ACTIVE)
        .order_by(ExportSchedule.next_run_at, ExportSchedule.project_id)
        .limit(limit)
    ).all()
    return [(pid, revision, next_run_at) for pid, revision, next_run_at in rows]


def take_slot(
    session: Session,
    project_id: uuid.UUID,
    *,
    revision: int,
    due_at: datetime,
    next_run_at: datetime,
    now: datetime,
) -> bool:
    """Move the schedule past its due slot if nobody did yet (same revision and next_run_at); True if we did.

    On Postgres the UPDATE locks the row until commit, so a second runner waits, then sees the new
    next_run_at and updates nothing.
    """
    taken = session.execute(
        update(ExportSchedule)
        .where(
            ExportSchedule.project_id == project_id,
            ExportSchedule.revision == revision,
            ExportSchedule.next_run_at == due_at,
        )
        .values(next_run_at=next_run_at, last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return taken.rowcount == 1  # type: ignore[attr-defined,no-any-return]
