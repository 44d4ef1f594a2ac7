"""Re-selection: choose pairs again, with the project's current settings, for prompts nobody was handed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.context import Caller
from app.jobs.models import Job, JobKind
from app.projects.models import Project
from app.selection.reembed import reset_untouched_prompts


@dataclass
class Reselection:
    job_id: uuid.UUID | None
    prompts: int


def reselect(session: Session, caller: Caller, project: Project) -> Reselection:
    """Send every untouched prompt back through selection (a job to follow); handed-out pairs stay.

    A pair that was ever handed out (leased now, labelled, or leased and expired: all count against the
    budget) keeps its prompt as it is. Vectors are already stored under the project's model, so the task
    only selects (after a model change it embeds the missing texts first).
    """
    job = Job(project_id=project.id, kind=JobKind.RESELECT, total=0)
    session.add(job)
    session.flush()
    prompt_ids = reset_untouched_prompts(session, project, job.id)
    if not prompt_ids:
        session.delete(job)
        session.flush()
        return Reselection(job_id=None, prompts=0)
    job.total = len(prompt_ids)
    audit.record(
        session,
        caller,
        "project.reselected",
        "project",
        project.id,
        {"prompts": len(prompt_ids), "strategy": project.strategy, "job_id": str(job.id)},
    )
    session.flush()
    return Reselection(job_id=job.id, prompts=len(prompt_ids))
