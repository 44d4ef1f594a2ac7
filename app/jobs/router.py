"""Job status: how far a long piece of work has got."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import DataTeamDep, SessionDep
from app.api.responses import problems
from app.jobs import service
from app.jobs.models import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])


class JobRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    kind: str
    status: JobStatus
    done: int
    total: int
    unit: str = "prompts"
    error: str | None
    created_at: datetime
    finished_at: datetime | None


@router.get("/{job_id}", response_model=JobRead, responses=problems(404))
def get_job(job_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> JobRead:
    """Status and progress (prompts embedded and paired out of those accepted)."""
    job = service.get(session, caller, job_id)
    p = service.progress(session, job)
    return JobRead(
        id=job.id,
        project_id=job.project_id,
        kind=job.kind,
        status=p.status,
        done=p.done,
        total=p.total,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )
