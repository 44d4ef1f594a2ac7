"""Projects: create, list, read, change, archive; and their stats."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.projects import service
from app.projects.deps import ActiveProjectDep, ProjectDep
from app.projects.models import Project
from app.projects.schemas import ProjectCreate, ProjectRead, ProjectStats, ProjectUpdate
from app.selection import reselect

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectRead, responses=problems())
def create_project(body: ProjectCreate, session: SessionDep, caller: DataTeamDep) -> Project:
    """Create a labelling project (a data team's own projects are visible to it)."""
    return service.create(session, caller, body)


@router.get("", response_model=Page[ProjectRead], responses=problems())
def list_projects(
    session: SessionDep, caller: DataTeamDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[ProjectRead]:
    """The projects the caller may see, oldest first."""
    return service.list_visible(session, caller, limit=limit, cursor=cursor).page(ProjectRead.model_validate)


@router.get("/{project_id}", response_model=ProjectRead, responses=problems(404))
def get_project(project: ProjectDep) -> Project:
    """One project."""
    return project


@router.patch("/{project_id}", response_model=ProjectRead, responses=problems(404, 409))
def update_project(
    project: ProjectDep, body: ProjectUpdate, session: SessionDep, caller: DataTeamDep
) -> Project:
    """Change a project's settings."""
    return service.update(session, caller, project, body)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def archive_project(project: ProjectDep, session: SessionDep, caller: DataTeamDep) -> Response:
    """Archive a project (its data stays; it takes no new prompts or claims)."""
    service.archive(session, caller, project)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ReselectRead(BaseModel):
    job_id: uuid.UUID | None
    prompts: int


@router.post(
    "/{project_id}/reselect",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReselectRead,
    responses=problems(404),
)
def reselect_project(project: ActiveProjectDep, session: SessionDep, caller: DataTeamDep) -> ReselectRead:
    """Choose pairs again, with the current strategy and threshold, for prompts no one was handed yet."""
    result = reselect.reselect(session, caller, project)
    return ReselectRead(job_id=result.job_id, prompts=result.prompts)


@router.get("/{project_id}/stats", response_model=ProjectStats, responses=problems(404))
def project_stats(project: ProjectDep, session: SessionDep) -> ProjectStats:
    """Ingest, embedding, pairing, labelling and budget counts."""
    return service.stats(session, project)
