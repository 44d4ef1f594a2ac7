"""Active-learning tasks: refit a project's reward model."""

from __future__ import annotations

import uuid

from app.active import service
from app.active.refresh import REFRESH_TASK, refresh_batch
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.db.session import get_database
from app.projects.models import Project, Strategy
from app.tasks import DATABASE_ERRORS, RetryPolicy, task


# A fit reads the labels afresh and adds a new version, so a retry after a database error is safe.
@task(
    service.REFIT_TASK,
    retry=RetryPolicy(max_attempts=3, backoff=2, backoff_max=60, transient=DATABASE_ERRORS),
)
def refit_reward_model(project_id: str) -> int | None:
    """Fit the project's reward model on its decided pairs; the new version, or None if too few."""
    with get_database().session() as session:
        project = session.get(Project, uuid.UUID(str(project_id)))
        if project is None:
            return None
        fitted = service.fit_project(session, project, utcnow())
        if fitted is None:
            return None
        if project.strategy == Strategy.ACTIVE:
            # The queue's unreleased pairs follow the new model (in batches, after this commit).
            send_after_commit(session, REFRESH_TASK, project_id=str(project.id))
        return fitted.version


# One bounded batch per run, then the next batch as its own task: no transaction holds many slots for long.
@task(
    REFRESH_TASK,
    retry=RetryPolicy(max_attempts=3, backoff=2, backoff_max=60, transient=DATABASE_ERRORS),
)
def refresh_priorities(project_id: str, after: str | None = None) -> int:
    """Choose an `active` project's unreleased pairs again with its newest reward model, one batch of
    prompts per run; the next batch is sent after this one commits. Returns the prompts re-paired."""
    with get_database().session() as session:
        project = session.get(Project, uuid.UUID(str(project_id)))
        if project is None or project.strategy != Strategy.ACTIVE:
            return 0
        repaired, cursor = refresh_batch(session, project, uuid.UUID(after) if after else None)
        if cursor is not None:
            send_after_commit(session, REFRESH_TASK, project_id=str(project.id), after=str(cursor))
        return repaired
