"""Ingest prompts with candidate responses; read them back."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.projects import service as projects
from app.prompts import service
from app.prompts.models import PromptStatus
from app.prompts.schemas import IngestRequest, IngestResult, PromptRead, PromptSummary

router = APIRouter(prefix="/projects/{project_id}/prompts", tags=["prompts"])


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=IngestResult, responses=problems(404, 409, 413)
)
def ingest_prompts(
    project_id: uuid.UUID, body: IngestRequest, session: SessionDep, caller: DataTeamDep
) -> IngestResult:
    """Store prompts and their candidate responses; embedding and pairing run in the background."""
    return service.ingest(session, projects.get_active(session, caller, project_id), body)


@router.get("", response_model=Page[PromptSummary], responses=problems(404))
def list_prompts(
    project_id: uuid.UUID,
    session: SessionDep,
    caller: DataTeamDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: PromptStatus | None = None,
    labelled: bool | None = None,
) -> Page[PromptSummary]:
    """The project's prompts, oldest first; filter by status (e.g. unpairable) and by having labels."""
    project = projects.get(session, caller, project_id)
    return service.list_prompts(
        session, project, status=status, labelled=labelled, limit=limit, cursor=cursor
    )


@router.get("/by-external-id/{external_id:path}", response_model=PromptRead, responses=problems(404))
def get_prompt_by_external_id(
    project_id: uuid.UUID, external_id: str, session: SessionDep, caller: DataTeamDep
) -> PromptRead:
    """A prompt by the id the data team gave it."""
    project = projects.get(session, caller, project_id)
    return service.read_prompt(
        session, project, service.get_prompt(session, project, external_id=external_id)
    )


@router.get("/{prompt_id}", response_model=PromptRead, responses=problems(404))
def get_prompt(
    project_id: uuid.UUID, prompt_id: uuid.UUID, session: SessionDep, caller: DataTeamDep
) -> PromptRead:
    """A prompt by its id."""
    project = projects.get(session, caller, project_id)
    return service.read_prompt(session, project, service.get_prompt(session, project, prompt_id=prompt_id))
