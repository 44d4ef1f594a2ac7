"""DPO exports: start one, list and follow them, download the data file and its manifest."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import FileResponse, Response, StreamingResponse

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.exports import service, storage
from app.exports.models import ExportRun, ExportStatus
from app.exports.schemas import ExportRead, ExportRequest, Manifest, ManifestSummary
from app.projects.deps import ProjectDep

router = APIRouter(tags=["exports"])

_FILE_TYPES = {
    "application/x-ndjson": {},
    "application/gzip": {"schema": {"type": "string", "format": "binary"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}


def _read(run: ExportRun) -> ExportRead:
    manifest = run.manifest
    summary = (
        ManifestSummary(
            schema_version=manifest["schema_version"],
            rows=manifest["counts"]["rows"],
            retracted=manifest["counts"].get("retracted", 0),
            replaced=manifest["counts"].get("replaced", 0),
            excluded=manifest["counts"]["excluded"],
            label_counts=manifest["counts"]["labels"],
            files=manifest["files"],
        )
        if manifest
        else None
    )
    succeeded = run.status == ExportStatus.SUCCEEDED
    return ExportRead(
        id=run.id,
        project_id=run.project_id,
        format=run.format,
        style=run.style,
        compression=run.compression,
        since=run.since_export_id,
        since_snapshot_at=run.since_snapshot_at,
        include_partial=bool(run.include_partial),
        filters=run.filters or {},
        status=ExportStatus(run.status),
        snapshot_at=run.snapshot_at,
        rows=run.rows,
        sha256=run.sha256,
        bytes=run.bytes,
        file_name=service.data_name(run) if succeeded and run.path else None,
        media_type=service.media_type(run),
        manifest=summary,
        error=run.error,
        attempts=run.attempts,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
    )


@router.post(
    "/projects/{project_id}/exports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExportRead,
    responses=problems(404),
)
def create_export(
    project: ProjectDep, session: SessionDep, caller: DataTeamDep, body: ExportRequest | None = None
) -> ExportRead:
    """Start a DPO export of the labels as of `snapshot_at` (default now); see docs/exports.md."""
    return _read(service.create(session, caller, project, body or ExportRequest()))


@router.get("/projects/{project_id}/exports", response_model=Page[ExportRead], responses=problems(404))
def list_exports(
    project: ProjectDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: Annotated[ExportStatus | None, Query(description="Only exports in this state.")] = None,
) -> Page[ExportRead]:
    """The project's exports, newest first."""
    return service.list_exports(session, project, limit=limit, cursor=cursor, status=status).page(_read)


@router.get("/projects/{project_id}/exports/latest", response_model=ExportRead, responses=problems(404))
def latest_export(
    project: ProjectDep,
    session: SessionDep,
    format: Annotated[
        Literal["jsonl", "parquet"] | None, Query(description="Only exports in this format.")
    ] = None,
) -> ExportRead:
    """The project's newest succeeded export; 404 if there is none."""
    return _read(service.latest(session, project, format))


@router.get("/exports/{export_id}", response_model=ExportRead, responses=problems(404))
def get_export(export_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> ExportRead:
    """An export's request, status, row count, sha256 and manifest summary."""
    return _read(service.get(session, caller, export_id))


@router.get(
    "/exports/{export_id}/file",
    response_class=Response,
    responses={
        200: {"content": _FILE_TYPES, "description": "The data file (JSONL, gzipped JSONL or Parquet)"},
        **problems(404, 409),
    },
)
def download_export(export_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> Response:
    """The data file, streamed from the export storage; its sha256 is the export's `sha256`."""
    run = service.get(session, caller, export_id)
    location, name = service.data_file(run)
    filename = f"{run.project_id}-{run.id}-{name}"
    local = storage.local_path(location, name)
    if local is not None:
        return FileResponse(local, media_type=service.media_type(run), filename=filename)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if run.bytes is not None:
        headers["Content-Length"] = str(run.bytes)
    return StreamingResponse(
        storage.iter_bytes(location, name), media_type=service.media_type(run), headers=headers
    )


@router.get(
    "/exports/{export_id}/manifest",
    response_model=Manifest,
    responses=problems(404, 409),
)
def export_manifest(export_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> Response:
    """manifest.json as stored beside the data file: request, counts, sha256 and bytes of the data file."""
    run = service.get(session, caller, export_id)
    return Response(service.manifest_bytes(run), media_type="application/json")
