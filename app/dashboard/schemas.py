"""The dashboard's response bodies (the page draws exactly these numbers)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.active.schemas import RewardModelRead
from app.projects.schemas import ProjectRead, ProjectStats
from app.quality.router import AnnotatorRead, QualityRead
from app.schedules.schemas import ExportScheduleRead


class QueueRead(BaseModel):
    """The queue now, ordinary pairs only (gold pairs are counted apart and never budgeted)."""

    pairs_waiting: int = Field(
        description="Pairs an annotator could be handed now: handed-out pairs with a free slot, plus "
        "never-handed-out pairs with a free slot as far as the budget still allows."
    )
    pairs_queued: int = Field(description="Chosen, never handed out.")
    pairs_in_progress: int = Field(description="Handed out, still wanting labels.")
    pairs_done: int = Field(description="With all the labels the project wants.")
    pairs_redundant: int = Field(description="Held back as redundant (skip_redundant_pairs).")
    gold_pairs: int
    slots_open: int = Field(description="Wanted labels no live lease holds.")
    slots_leased: int = Field(description="Wanted labels a live lease holds.")
    budget_pairs_left: int | None = Field(
        description="Pairs the budget may still hand out for the first time (null: no budget)."
    )


class LeaseRead(BaseModel):
    assignment_id: uuid.UUID
    annotator: str
    pair_id: uuid.UUID
    claimed_at: datetime
    expires_at: datetime
    seconds_left: float
    renewals: int


class LeasesRead(BaseModel):
    live: int = Field(description="Live (unexpired, unanswered) leases of the project.")
    soonest: list[LeaseRead] = Field(description="Up to 100 of them, soonest expiry first.")


class ExportLink(BaseModel):
    """An export with the links to its data file and manifest (null until it succeeded)."""

    id: uuid.UUID
    status: str
    format: str
    style: str
    compression: str
    incremental: bool = Field(description="It continues an earlier export (`since`).")
    rows: int | None
    bytes: int | None
    sha256: str | None
    snapshot_at: datetime
    created_at: datetime
    finished_at: datetime | None
    file_url: str | None = Field(description="GET it with the same key: the data file.")
    manifest_url: str | None


class ScheduleLink(BaseModel):
    schedule: ExportScheduleRead
    last_export: ExportLink | None = Field(description="The export the last due slot made, if any.")


class DashboardRead(BaseModel):
    """A project's numbers now: `GET .../dashboard/timeline` and `.../dashboard/similarity` add the
    series and the histogram."""

    generated_at: datetime
    project: ProjectRead
    stats: ProjectStats = Field(description="As `GET .../stats`: budget, labels, pairs released.")
    queue: QueueRead
    leases: LeasesRead
    quality: QualityRead = Field(description="As `GET .../quality`: agreement as last aggregated.")
    annotators: list[AnnotatorRead] = Field(description="As `GET .../annotators`.")
    exports: list[ExportLink] = Field(description="The 10 newest exports.")
    schedule: ScheduleLink | None = Field(description="The export schedule; null: none.")
    reward_model: list[RewardModelRead] = Field(
        description="Every reward-model fit, oldest first (as `GET .../reward-model` history): the accuracy "
        "curve is cv_accuracy against labels_used."
    )


class AgreementPoint(BaseModel):
    at: datetime = Field(description="The agreement of the labels stored before this moment.")
    labels: int = Field(description="Labels on ordinary pairs by then.")
    pairs_with_overlap: int
    krippendorff_alpha: float | None
    fleiss_kappa: float | None


class TimelineRead(BaseModel):
    """Labels per time bucket (UTC, aligned to the Unix epoch) from the first label's bucket to now's."""

    bucket_seconds: int
    starts: list[datetime] = Field(description="Each bucket's start.")
    labels: list[int] = Field(description="Budgeted labels (ordinary pairs) stored in each bucket.")
    gold_labels: list[int] = Field(description="Gold-check labels stored in each bucket.")
    labels_per_hour: list[float] = Field(
        description="All labels (ordinary and gold) per hour in each bucket."
    )
    cumulative_labels: list[int] = Field(description="Budgeted labels stored by each bucket's end.")
    budget: int | None
    budget_remaining: list[int] | None = Field(
        description="The burn-down: budget minus cumulative_labels (not below 0); null without a budget."
    )
    agreement: list[AgreementPoint] = Field(
        description="Krippendorff's alpha and Fleiss' kappa of the ordinary labels as they stood at up to 24 "
        "evenly spaced bucket ends (the last: now), computed as the quality snapshot computes them; fewer "
        "(at least 2) past 40,000 labels, so the work stays bounded."
    )


class SimilarityRead(BaseModel):
    """Cosine similarity of every candidate pair of (a sample of) the project's paired prompts against the
    pairs the selection chose, by the selection's own computation under the project's embedding model."""

    embedding_model: str
    near_duplicate_threshold: float | None
    edges: list[float] = Field(description="Bin edges over [-1, 1]; bin n is [edges[n], edges[n+1]).")
    candidates: list[int] = Field(description="Candidate pairs per bin.")
    selected: list[int] = Field(description="Chosen pairs per bin.")
    candidate_pairs: int
    selected_pairs: int
    candidate_mean: float | None
    selected_mean: float | None
    near_duplicate_pairs: int = Field(
        description="Pairs with a response collapsed as a near-duplicate (never candidates; not binned)."
    )
    prompts: int = Field(description="Paired prompts in the project.")
    prompts_sampled: int = Field(description="Those read (a seeded sample when more than max_prompts).")
    prompts_skipped: int = Field(
        description="Sampled prompts left out: a response has no vector under the current embedding model."
    )
    max_prompts: int
