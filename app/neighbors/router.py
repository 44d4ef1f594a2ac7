"""Cross-prompt neighbours for analysts: a response's nearest responses, and near-duplicate counts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SessionDep
from app.api.responses import problems
from app.neighbors import service
from app.neighbors.schemas import NeighborsRead, NeighborStats
from app.projects.deps import ProjectDep

router = APIRouter(prefix="/projects/{project_id}", tags=["neighbors"])


@router.get("/responses/{response_id}/neighbors", response_model=NeighborsRead, responses=problems(404, 409))
def get_response_neighbors(
    project: ProjectDep,
    response_id: uuid.UUID,
    session: SessionDep,
    k: Annotated[int, Query(ge=1, le=100, description="How many neighbours.")] = 10,
) -> NeighborsRead:
    """The k responses of the project most similar to this one (cosine), across prompts."""
    return service.neighbors(session, project, response_id, k)


@router.get("/neighbors/stats", response_model=NeighborStats, responses=problems(404, 409))
def get_neighbor_stats(project: ProjectDep, session: SessionDep) -> NeighborStats:
    """Near-duplicate and exact-duplicate counts across the project's responses."""
    return service.stats(session, project)
