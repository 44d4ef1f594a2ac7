"""Job status: how far a long piece of work has got."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.jobs import service
from app.jobs.models import JobKind, JobStatus
from app.prompts import upload
from app.prompts.schemas import LineError

router = APIRouter(prefix="/jobs", tags=["jobs"])


class UploadCounts(BaseModel):
    lines: int = Field(description="Lines read so far (blank ones included).")
    accepted: int = Field(description="Prompts stored so far.")
    duplicates: int
    errors: int = Field(description="Lines refused so far: GET /v1/jobs/{job_id}/errors.")
    received: bool = Field(description="The whole body has been read.")


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
    upload: UploadCounts | None = Field(
        default=None, description="Upload jobs: the file's counters (status is running while it streams in)."
    )


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
        upload=UploadCounts(
            lines=job.lines or 0,
            accepted=job.total,
            duplicates=job.duplicates or 0,
            errors=job.failed_lines or 0,
            received=job.received_at is not None,
        )
        if job.kind == JobKind.UPLOAD
        else None,
    )


@router.get("/{job_id}/errors", response_model=Page[LineError], responses=problems(404))
def get_job_errors(
    job_id: uuid.UUID,
    session: SessionDep,
    caller: DataTeamDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> Page[LineError]:
    """An upload's refused lines, in line order: number, external id (when it could be read), field, reason.
    Empty for other jobs."""
    return upload.errors_page(session, service.get(session, caller, job_id), limit=limit, cursor=cursor)
