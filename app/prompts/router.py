"""Ingest prompts with candidate responses; read them back."""

from __future__ import annotations

import uuid

from anyio import to_thread
from fastapi import APIRouter, Request, status

from app.api.clock import NowDep
from app.api.deps import BearerDep, SessionDep, credentials_of
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.errors import UnsupportedMediaType
from app.middleware import SQLITE_LOCK
from app.projects.deps import ActiveProjectDep, ProjectDep, ProjectIdPath
from app.prompts import service, upload
from app.prompts.models import PromptStatus
from app.prompts.schemas import IngestRequest, IngestResult, PromptRead, PromptSummary, UploadResult
from app.schemas import NoNulStr

router = APIRouter(prefix="/projects/{project_id}/prompts", tags=["prompts"])
upload_router = APIRouter(tags=["prompts"])

# The body is read as bytes whatever its Content-Type says (application/x-ndjson is the natural one).
_UPLOAD_BODY = {
    "required": True,
    "description": "JSON Lines, one ingest item a line; gzip by Content-Encoding or its magic bytes.",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}


@upload_router.post(
    "/projects/{project_id}/prompts:upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResult,
    responses=problems(404, 413, 415),
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_prompts(
    project_id: ProjectIdPath, request: Request, credentials: BearerDep, now: NowDep
) -> UploadResult:
    """A JSONL file of ingest items, one `{external_id, prompt, responses, metadata?}` a line, of any size:
    streamed, gzip accepted (`Content-Encoding: gzip` or gzip's magic bytes), stored a batch of lines per
    transaction. A bad line is refused with its number and reason and the rest goes in; a line is all in or
    all out. Sending the file again stores nothing twice. Follow it with `GET /v1/jobs/{job_id}`."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip"):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r}: send gzip or nothing")
    lock = request.scope.get(SQLITE_LOCK)
    credentials_ = credentials_of(request, credentials)
    if lock is not None:
        async with lock:
            job_id = await to_thread.run_sync(upload.begin, credentials_, project_id, now)
    else:
        job_id = await to_thread.run_sync(upload.begin, credentials_, project_id, now)
    return await upload.receive(
        request.stream(),
        project_id=project_id,
        job_id=job_id,
        gzip=True if encoding in ("gzip", "x-gzip") else None,
        lock=lock,
    )


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=IngestResult, responses=problems(404, 409, 413)
)
def ingest_prompts(project: ActiveProjectDep, body: IngestRequest, session: SessionDep) -> IngestResult:
    """Store prompts and their candidate responses; embedding and pairing run in the background."""
    return service.ingest(session, project, body)


@router.get("", response_model=Page[PromptSummary], responses=problems(404))
def list_prompts(
    project: ProjectDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: PromptStatus | None = None,
    labelled: bool | None = None,
) -> Page[PromptSummary]:
    """The project's prompts, oldest first; filter by status (e.g. unpairable) and by having labels."""
    return service.list_prompts(
        session, project, status=status, labelled=labelled, limit=limit, cursor=cursor
    )


@router.get("/by-external-id/{external_id:path}", response_model=PromptRead, responses=problems(404))
def get_prompt_by_external_id(project: ProjectDep, external_id: NoNulStr, session: SessionDep) -> PromptRead:
    """A prompt by the id the data team gave it."""
    return service.read_prompt(
        session, project, service.get_prompt(session, project, external_id=external_id)
    )


@router.get("/{prompt_id}", response_model=PromptRead, responses=problems(404))
def get_prompt(project: ProjectDep, prompt_id: uuid.UUID, session: SessionDep) -> PromptRead:
    """A prompt by its id."""
    return service.read_prompt(session, project, service.get_prompt(session, project, prompt_id=prompt_id))
