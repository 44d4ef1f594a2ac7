"""The project a route works on, loaded from its ``project_id`` path parameter after the caller's role check.

Each loader depends on a role dependency, which FastAPI solves first: a caller of the wrong role gets 403
before the project is looked up, and a project the caller may not see is 404, the same as a missing one.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path

from app.api.deps import DataTeamDep, ReviewerDep, SessionDep
from app.projects import service
from app.projects.models import Project

ProjectIdPath = Annotated[uuid.UUID, Path()]


def data_team_project(project_id: ProjectIdPath, session: SessionDep, caller: DataTeamDep) -> Project:
    """A project a data team (or an admin) may see, archived ones included (they stay readable)."""
    return service.get(session, caller, project_id)


def active_data_team_project(project_id: ProjectIdPath, session: SessionDep, caller: DataTeamDep) -> Project:
    """A project a data team (or an admin) may see that takes new work: 404 once archived."""
    return service.get_active(session, caller, project_id)


def reviewer_project(project_id: ProjectIdPath, session: SessionDep, caller: ReviewerDep) -> Project:
    """A project a reviewer may see (the reviewer flag says nothing about which projects)."""
    return service.get(session, caller, project_id)


ProjectDep = Annotated[Project, Depends(data_team_project)]
ActiveProjectDep = Annotated[Project, Depends(active_data_team_project)]
ReviewProjectDep = Annotated[Project, Depends(reviewer_project)]
