"""Active-learning tasks: refit a project's reward model."""

from __future__ import annotations

import uuid

from app.active import service
from app.db.base import utcnow
from app.db.session import get_database
from app.projects.models import Project
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
        return fitted.version if fitted is not None else None
