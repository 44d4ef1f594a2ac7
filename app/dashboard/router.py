"""The dashboard's numbers as JSON, for data teams and admins: what the /dashboard page draws."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.clock import NowDep
from app.api.deps import SessionDep
from app.api.responses import problems
from app.dashboard import series, service
from app.dashboard.schemas import DashboardRead, SimilarityRead, TimelineRead
from app.projects.deps import ProjectDep

router = APIRouter(prefix="/projects/{project_id}/dashboard", tags=["dashboard"])


@router.get("", response_model=DashboardRead, responses=problems(404))
def dashboard(project: ProjectDep, session: SessionDep, now: NowDep) -> DashboardRead:
    """The project's numbers now: budget, queue depth, live leases, agreement, the per-annotator table,
    exports and the schedule with download links, and every reward-model fit."""
    return service.overview(session, project, now)


@router.get("/timeline", response_model=TimelineRead, responses=problems(404))
def timeline(
    project: ProjectDep,
    session: SessionDep,
    now: NowDep,
    bucket_seconds: Annotated[
        int | None,
        Query(
            ge=60,
            le=31 * 86_400,
            description="Bucket size; default: the smallest of 1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 1 day or "
            f"1 week giving at most {series.AUTO_MAX_BUCKETS} buckets. At most {series.MAX_BUCKETS} buckets.",
        ),
    ] = None,
) -> TimelineRead:
    """Labels per bucket since the first label: the budget burn-down, labels per hour, and agreement
    (alpha, kappa) as it stood over time."""
    return service.timeline(session, project, now, bucket_seconds)


@router.get("/similarity", response_model=SimilarityRead, responses=problems(404))
def similarity(
    project: ProjectDep,
    session: SessionDep,
    max_prompts: Annotated[
        int,
        Query(
            ge=1,
            le=service.MAX_SIMILARITY_PROMPTS,
            description="Read at most this many paired prompts (a seeded sample beyond it).",
        ),
    ] = service.DEFAULT_SIMILARITY_PROMPTS,
    bins: Annotated[int, Query(ge=10, le=200, description="Histogram bins over [-1, 1].")] = 40,
) -> SimilarityRead:
    """What REAL does to the data: cosine similarity of every candidate pair against the chosen pairs."""
    return service.similarity(session, project, max_prompts, bins)
