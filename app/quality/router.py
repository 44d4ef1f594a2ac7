"""Label quality: agreement and aggregates, annotator stats, gold checks, the review queue."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from app.api.clock import NowDep
from app.api.deps import AnnotatorDep, DataTeamDep, ReviewerDep, SessionDep
from app.api.responses import problems
from app.projects import service as projects
from app.projects.deps import ProjectDep, ProjectIdPath, ReviewProjectDep
from app.quality import service
from app.schemas import Input, IsoDateTime, NoNulStr

router = APIRouter(prefix="/projects/{project_id}", tags=["quality"])

Verdict = Literal["a", "b", "tie", "both_bad"]


class FleissRead(BaseModel):
    kappa: float | None
    raters: int
    items: int
    items_left_out: int


class CohenRead(BaseModel):
    annotators: list[str]
    kappa: float | None
    items: int


class DawidSkeneRead(BaseModel):
    iterations: int
    converged: bool
    priors: dict[str, float]


class QualityRead(BaseModel):
    labels: int
    gold_labels: int
    pairs_labelled: int
    pairs_with_overlap: int
    krippendorff_alpha: float | None = Field(description="Nominal alpha over all labelled pairs.")
    fleiss_kappa: FleissRead
    cohen_kappa: list[CohenRead] = Field(description="Per annotator pair sharing at least two pairs.")
    dawid_skene: DawidSkeneRead | None = Field(description="Null until some pair has two or more labels.")
    pairs_needing_review: int = Field(description="Pairs in the review queue now.")
    computed_at: datetime | None = Field(
        description="When the numbers above were computed (by the quality.aggregate task); null: never."
    )
    stale: bool = Field(description="Labels were stored or withdrawn since computed_at.")


class RefreshRead(BaseModel):
    project_id: uuid.UUID
    computed_at: datetime | None = Field(description="The snapshot that the new aggregation will replace.")


class AnnotatorRead(BaseModel):
    annotator: str
    labels: int
    median_seconds_per_label: float | None
    skips: int
    skip_rate: float | None
    gold_answered: int
    gold_accuracy: float | None
    flagged: bool = Field(
        description="Gold accuracy under the project's gold_min_accuracy (3+ gold answers)."
    )
    agreement_with_majority: float | None
    reliability: float | None = Field(
        description="Dawid-Skene expected accuracy, as of the last aggregation."
    )


class ReviewItem(BaseModel):
    pair_id: uuid.UUID
    labels: int
    agreement: float | None
    outcome: Literal["a", "b", "tie", "both_bad", "undecided"] | None = Field(
        description="What the labels decide by the exports' rule (app/labels/outcome.py); undecided: no "
        "response wins and neither tie nor both_bad has the most labels."
    )
    ds_choice: str | None
    ds_posterior: dict[str, float] | None


class ReviewCreate(Input):
    verdict: Verdict = Field(
        description="a / b: the pair's response_a / response_b is better; tie; both_bad."
    )
    note: NoNulStr | None = Field(default=None, max_length=5_000)


class ReviewRead(BaseModel):
    id: uuid.UUID
    pair_id: uuid.UUID
    reviewer: str
    verdict: str
    note: str | None
    created_at: datetime


class ProgressRead(BaseModel):
    annotator: str
    since: datetime
    labels_since: int = Field(description="Your labels stored since `since` (withdrawn ones not counted).")
    skips_since: int
    labels_total: int
    gold_enabled: bool = Field(description="The project mixes gold checks into claims (gold_rate > 0).")
    gold_answered: int
    gold_correct: int
    gold_accuracy: float | None


class ReviewResponse(BaseModel):
    id: uuid.UUID
    text: str


class ReviewLabel(BaseModel):
    side: Verdict = Field(description="In pair terms: a / b name response_a / response_b.")
    confidence: int | None
    rationale: str | None


class ReviewPairRead(BaseModel):
    pair_id: uuid.UUID
    prompt: str | list[dict[str, Any]]
    instructions: str
    response_a: ReviewResponse
    response_b: ReviewResponse
    labels: list[ReviewLabel]
    outcome: Literal["a", "b", "tie", "both_bad", "undecided"] | None
    agreement: float | None
    review_verdict: Verdict | None


class GoldSet(Input):
    answer: Verdict | None = Field(description="The known answer in pair terms; null unmarks the pair.")


class GoldRead(BaseModel):
    pair_id: uuid.UUID
    gold_answer: str | None


@router.get("/quality", response_model=QualityRead, responses=problems(404))
def quality(project: ProjectDep, session: SessionDep) -> Any:
    """Agreement (Krippendorff's alpha, Fleiss' kappa, pairwise Cohen's kappa) as last aggregated."""
    return service.read_quality(session, project)


@router.post(
    "/quality/refresh",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RefreshRead,
    responses=problems(404),
)
def refresh_quality(project: ProjectDep, session: SessionDep) -> RefreshRead:
    """Recompute the aggregates and agreement now, in the background (safe to repeat)."""
    stored = service.request_refresh(session, project)
    return RefreshRead(project_id=project.id, computed_at=stored.computed_at if stored else None)


@router.get("/annotators", response_model=list[AnnotatorRead], responses=problems(404))
def annotators(project: ProjectDep, session: SessionDep) -> Any:
    """Per annotator: labels, median seconds per label, skip rate, gold accuracy, agreement, reliability."""
    return service.annotator_stats(session, project)


@router.get("/review", response_model=list[ReviewItem], responses=problems(404))
def review_queue(project: ReviewProjectDep, session: SessionDep) -> Any:
    """Pairs whose labels disagree (undecided, or agreement under the threshold), least agreed first."""
    return [
        ReviewItem.model_validate(
            {
                "pair_id": p.id,
                "labels": p.labels_count,
                "agreement": p.agreement,
                "outcome": p.outcome,
                "ds_choice": p.ds_choice,
                "ds_posterior": p.ds_posterior,
            }
        )
        for p in service.review_queue(session, project)
    ]


@router.post(
    "/pairs/{pair_id}/review",
    status_code=status.HTTP_201_CREATED,
    response_model=ReviewRead,
    responses=problems(404),
)
def review(
    project: ReviewProjectDep,
    pair_id: uuid.UUID,
    body: ReviewCreate,
    session: SessionDep,
    caller: ReviewerDep,
) -> Any:
    """Record a verdict that overrides the pair's aggregate (kept with its history)."""
    row = service.review(session, caller, project, pair_id, body.verdict, body.note)
    return ReviewRead(
        id=row.id,
        pair_id=row.pair_id,
        reviewer=row.reviewer,
        verdict=row.verdict,
        note=row.note,
        created_at=row.created_at,
    )


@router.get("/progress", response_model=ProgressRead, responses=problems(404))
def progress(
    project_id: ProjectIdPath,
    session: SessionDep,
    caller: AnnotatorDep,
    now: NowDep,
    since: Annotated[
        IsoDateTime | None,
        Query(description="Count labels and skips from here (the start of your day); default: 00:00 UTC."),
    ] = None,
) -> Any:
    """Your own progress in a project: labels and skips today, labels in all, gold accuracy."""
    project = projects.get(session, caller, project_id)
    start = since if since is not None else now.replace(hour=0, minute=0, second=0, microsecond=0)
    return service.progress(session, project, caller.name, start)


@router.get("/pairs/{pair_id}/review", response_model=ReviewPairRead, responses=problems(404))
def review_pair(project: ReviewProjectDep, pair_id: uuid.UUID, session: SessionDep) -> Any:
    """A pair to review: its prompt, both responses (pair terms), its labels and what they decide."""
    return service.review_pair(session, project, pair_id)


@router.put("/pairs/{pair_id}/gold", response_model=GoldRead, responses=problems(404))
def set_gold(
    project: ProjectDep, pair_id: uuid.UUID, body: GoldSet, session: SessionDep, caller: DataTeamDep
) -> Any:
    """Mark a pair as a gold check with its known answer; gold pairs are mixed into queues, never budgeted."""
    pair = service.set_gold(session, caller, project, pair_id, body.answer)
    return GoldRead(pair_id=pair.id, gold_answer=pair.gold_answer)
