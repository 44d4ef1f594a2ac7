"""Ingest prompts with candidate responses; read them back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.api.deps import SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.projects.deps import ActiveProjectDep, ProjectDep
from app.prompts import service
from app.prompts.models import PromptStatus
from app.prompts.schemas import IngestRequest, IngestResult, PromptRead, PromptSummary
from app.schemas import NoNulStr

router = APIRouter(prefix="/projects/{project_id}/prompts", tags=["prompts"])


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
