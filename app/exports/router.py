"""DPO exports: start one, follow it, download the file."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

from app.api.deps import DataTeamDep, SessionDep
from app.api.responses import problems
from app.exports import service
from app.exports.models import ExportRun, ExportStatus
from app.projects import service as projects
from app.schemas import Input

router = APIRouter(tags=["exports"])


class ExportCreate(Input):
    format: Literal["jsonl"] = "jsonl"


class ExportRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    format: str
    status: ExportStatus
    snapshot_at: datetime
    rows: int | None
    sha256: str | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


def _read(run: ExportRun) -> ExportRead:
    return ExportRead(
        id=run.id,
        project_id=run.project_id,
        format=run.format,
        status=ExportStatus(run.status),
        snapshot_at=run.snapshot_at,
        rows=run.rows,
        sha256=run.sha256,
        error=run.error,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


@router.post(
    "/projects/{project_id}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExportRead,
    responses=problems(404),
)
def create_export(
    project_id: uuid.UUID, session: SessionDep, caller: DataTeamDep, body: ExportCreate | None = None
) -> ExportRead:
    """Start a DPO export of the labels as of now."""
    project = projects.get(session, caller, project_id)
    return _read(service.create(session, caller, project, (body or ExportCreate()).format))


@router.get("/exports/{export_id}", response_model=ExportRead, responses=problems(404))
def get_export(export_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> ExportRead:
    """An export's status, row count and sha256."""
    return _read(service.get(session, caller, export_id))


@router.get(
    "/exports/{export_id}/file",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/x-ndjson": {}}, "description": "The JSONL file"},
        **problems(404, 409),
    },
)
def download_export(export_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> FileResponse:
    """The export file, streamed (TRL preference format, one JSON object per line)."""
    run = service.get(session, caller, export_id)
    path = service.file_path(run)
    if not path.exists():
        raise service.NotFound(f"the file of export {export_id} is missing from the export directory")
    return FileResponse(path, media_type="application/x-ndjson", filename=f"{run.project_id}-{run.id}.jsonl")
