"""Job progress, derived from the rows the job created (no counters to drift)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.auth.context import Caller
from app.db.base import utcnow
from app.errors import NotFound
from app.jobs.models import Job, JobKind, JobStatus
from app.projects import service as projects
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus


@dataclass
class JobProgress:
    job: Job
    status: JobStatus
    done: int
    total: int


def get(session: Session, caller: Caller, job_id: uuid.UUID) -> Job:
    """A job of a project the caller may see, or 404."""
    job = session.get(Job, job_id)
    if job is None or not projects.can_see(caller, session.get_one(Project, job.project_id)):
        raise NotFound(f"no job {job_id}")
    return job


def progress(session: Session, job: Job) -> JobProgress:
    """How far an ingest job is: prompts embedded and paired (or found unpairable) out of those accepted."""
    pending = (
        session.scalar(
            select(func.count())
            .select_from(Prompt)
            .where(Prompt.job_id == job.id, Prompt.status == PromptStatus.PENDING)
        )
        or 0
    )
    done = max(job.total - pending, 0)
    if job.error:
        status = JobStatus.FAILED
    elif receiving(job):
        status = JobStatus.RUNNING
    elif done >= job.total:
        status = JobStatus.SUCCEEDED
    elif done > 0:
        status = JobStatus.RUNNING
    else:
        status = JobStatus.QUEUED
    return JobProgress(job=job, status=status, done=done, total=job.total)


def receiving(job: Job) -> bool:
    """An upload whose body is still streaming in: more prompts may come."""
    return job.kind == JobKind.UPLOAD and job.received_at is None and job.error is None


def finish_jobs_if_done(session: Session, job_ids: Iterable[uuid.UUID]) -> None:
    """Stamp finished_at on jobs that have no pending prompt left (an upload once its body has ended)."""
    for job_id in job_ids:
        pending = session.scalar(
            select(func.count())
            .select_from(Prompt)
            .where(Prompt.job_id == job_id, Prompt.status == PromptStatus.PENDING)
        )
        if not pending:
            session.execute(
                update(Job)
                .where(
                    Job.id == job_id,
                    Job.finished_at.is_(None),
                    # not an upload still streaming in (``receiving``)
                    or_(Job.kind != JobKind.UPLOAD, Job.received_at.is_not(None), Job.error.is_not(None)),
                )
                .values(finished_at=utcnow())
            )
