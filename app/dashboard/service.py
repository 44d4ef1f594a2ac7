"""The dashboard's numbers, read through the domains that own them (no rule is derived again here).

Budget and counts come from app/projects (stats), agreement and the per-annotator table from app/quality,
pair sides from app/labels/outcome.py, reward-model fits from app/active, exports and schedules from
app/exports and app/schedules, and similarities from app/selection's own functions.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app.active import service as active
from app.active.schemas import RewardModelRead
from app.dashboard import repository, series
from app.dashboard.schemas import (
    AgreementPoint,
    DashboardRead,
    ExportLink,
    LeaseRead,
    LeasesRead,
    QueueRead,
    ScheduleLink,
    SimilarityRead,
    TimelineRead,
)
from app.embeddings import repository as embedding_repository
from app.errors import InvalidInput, NotFound
from app.exports import service as exports
from app.exports.models import ExportRun, ExportStatus
from app.pairs.models import PairStatus
from app.projects import service as projects
from app.projects.models import Project
from app.projects.schemas import ProjectRead
from app.quality import service as quality
from app.quality.router import AnnotatorRead, QualityRead
from app.queue import budget
from app.queue import repository as queue_repository
from app.schedules import service as schedules
from app.schedules.models import ExportSchedule
from app.selection.service import distinct_candidates, stack
from app.selection.strategies import seed_for

RECENT_EXPORTS = 10
LEASES_SHOWN = 100
# The similarity histogram reads at most this many paired prompts by default (a seeded sample beyond it),
# and never more than MAX_SIMILARITY_PROMPTS: 1,000 prompts took 0.7 s with 4 responses each and 2.4 s with
# 16 (docs/dashboard.md), nearly all of it reading responses and vectors. Prompts are read SIMILARITY_BLOCK
# at a time, so memory stays bounded too.
DEFAULT_SIMILARITY_PROMPTS = 1_000
MAX_SIMILARITY_PROMPTS = 5_000
SIMILARITY_BLOCK = 250


def overview(session: Session, project: Project, now: datetime) -> DashboardRead:
    """Everything the dashboard shows that is a number now (the series are in ``timeline``)."""
    stats = projects.stats(session, project)
    try:
        schedule: ExportSchedule | None = schedules.get(session, project)
    except NotFound:
        schedule = None
    last_export = (
        repository.export_run(session, schedule.last_export_id)
        if schedule is not None and schedule.last_export_id is not None
        else None
    )
    return DashboardRead(
        generated_at=now,
        project=ProjectRead.model_validate(project),
        stats=stats,
        queue=queue(session, project, now),
        leases=leases(session, project, now),
        quality=QualityRead.model_validate(quality.read_quality(session, project)),
        annotators=[AnnotatorRead.model_validate(row) for row in quality.annotator_stats(session, project)],
        exports=[
            export_link(run)
            for run in exports.list_exports(session, project, limit=RECENT_EXPORTS, cursor=None).rows
        ],
        schedule=ScheduleLink(
            schedule=schedules.read(schedule), last_export=export_link(last_export) if last_export else None
        )
        if schedule is not None
        else None,
        reward_model=[
            RewardModelRead.model_validate(fit, from_attributes=True)
            for fit in reversed(active.history(session, project.id))
        ],
    )


def queue(session: Session, project: Project, now: datetime) -> QueueRead:
    """Pairs by state, open and leased slots, and what could be handed out now."""
    by_status = repository.pairs_by_status(session, project.id)

    def ordinary(status: str) -> int:
        return by_status.get((status, False), 0)

    open_slots = repository.open_slots(session, project.id, now)
    budget_left = budget.pairs_left(
        project.budget, project.annotations_per_pair, queue_repository.spent(session, project.id)
    )
    free_released = open_slots.pairs.get((True, False), 0)
    free_unreleased = open_slots.pairs.get((False, False), 0)
    return QueueRead(
        pairs_waiting=free_released
        + (free_unreleased if budget_left is None else min(free_unreleased, budget_left)),
        pairs_queued=ordinary(PairStatus.QUEUED),
        pairs_in_progress=ordinary(PairStatus.RELEASED),
        pairs_done=ordinary(PairStatus.DONE),
        pairs_redundant=ordinary(PairStatus.REDUNDANT),
        gold_pairs=sum(n for (_status, gold), n in by_status.items() if gold),
        slots_open=sum(n for (_released, leased), n in open_slots.slots.items() if not leased),
        slots_leased=sum(n for (_released, leased), n in open_slots.slots.items() if leased),
        budget_pairs_left=budget_left,
    )


def leases(session: Session, project: Project, now: datetime) -> LeasesRead:
    """The live leases: how many, and the soonest to expire."""
    total, soonest = repository.live_leases(session, project.id, now, LEASES_SHOWN)
    return LeasesRead(
        live=total,
        soonest=[
            LeaseRead(
                assignment_id=a.id,
                annotator=a.annotator,
                pair_id=a.pair_id,
                claimed_at=a.created_at,
                expires_at=a.lease_expires_at,
                seconds_left=round((a.lease_expires_at - now).total_seconds(), 3),
                renewals=a.renewals,
            )
            for a in soonest
        ],
    )


def export_link(run: ExportRun) -> ExportLink:
    """An export with its download links (the routes of app/exports/router.py)."""
    succeeded = run.status == ExportStatus.SUCCEEDED and bool(run.path)
    return ExportLink(
        id=run.id,
        status=run.status,
        format=run.format,
        style=run.style,
        compression=run.compression,
        incremental=run.since_export_id is not None,
        rows=run.rows,
        bytes=run.bytes,
        sha256=run.sha256,
        snapshot_at=run.snapshot_at,
        created_at=run.created_at,
        finished_at=run.finished_at,
        file_url=f"/v1/exports/{run.id}/file" if succeeded else None,
        manifest_url=f"/v1/exports/{run.id}/manifest" if succeeded else None,
    )


def timeline(session: Session, project: Project, now: datetime, bucket_seconds: int | None) -> TimelineRead:
    """Budgeted and gold labels per bucket, the burn-down, labels per hour, and agreement over time."""
    labels = repository.timed_labels(session, project.id)
    first = min(labels[0].labeled_at, now) if labels else now
    if bucket_seconds is None:
        size = series.auto_bucket(first, now)
    else:
        size = bucket_seconds
        if series.bucket_count(first, now, size) > series.MAX_BUCKETS:
            raise InvalidInput(
                f"bucket_seconds={size} gives more than {series.MAX_BUCKETS} buckets since the first label",
                field="bucket_seconds",
            )
    starts = series.bucket_starts(first, now, size)
    ordinary = series.count_per_bucket([x.labeled_at for x in labels if not x.gold], starts, size)
    gold = series.count_per_bucket([x.labeled_at for x in labels if x.gold], starts, size)
    cumulative = [int(c) for c in np.cumsum(ordinary)]
    hours = size / 3600
    # Each point is the agreement of the labels stored before its bucket's end; now lies in the last
    # bucket, so the last point covers every label, as the quality snapshot does.
    rows = [(x.labeled_at, x.pair_id, x.annotator, x.side) for x in labels if not x.gold]
    points = series.point_indices(len(starts), series.agreement_points(len(rows)))
    agreement = series.agreement_over_time(rows, [starts[n] + timedelta(seconds=size) for n in points])
    return TimelineRead(
        bucket_seconds=size,
        starts=starts,
        labels=ordinary,
        gold_labels=gold,
        labels_per_hour=[round((o + g) / hours, 6) for o, g in zip(ordinary, gold, strict=True)],
        cumulative_labels=cumulative,
        budget=project.budget,
        budget_remaining=None if project.budget is None else [max(project.budget - c, 0) for c in cumulative],
        agreement=[
            AgreementPoint(
                at=min(p.at, now),
                labels=p.labels,
                pairs_with_overlap=p.pairs_with_overlap,
                krippendorff_alpha=p.krippendorff_alpha,
                fleiss_kappa=p.fleiss_kappa,
            )
            for p in agreement
        ],
    )


def similarity(
    session: Session, project: Project, max_prompts: int = DEFAULT_SIMILARITY_PROMPTS, bins: int = 40
) -> SimilarityRead:
    """Histograms of the cosine similarity of all candidate pairs and of the chosen pairs, over the same
    prompts: every paired prompt, or a sample of ``max_prompts`` seeded by the project (the same sample on
    every call while the prompts stay the same)."""
    prompt_ids = repository.paired_prompt_ids(session, project.id)
    sampled = prompt_ids
    if len(prompt_ids) > max_prompts:
        rng = np.random.default_rng(seed_for(project.id, "dashboard.similarity"))
        sampled = [
            prompt_ids[n] for n in sorted(rng.choice(len(prompt_ids), size=max_prompts, replace=False))
        ]
    candidates: list[npt.NDArray[np.float64]] = []
    selected: list[npt.NDArray[np.float64]] = []
    near_duplicates = skipped = 0
    for start in range(0, len(sampled), SIMILARITY_BLOCK):
        block = sampled[start : start + SIMILARITY_BLOCK]
        found = _block_similarities(session, project, block)
        if found is None:
            skipped += len(block)
            continue
        result, left_out = found
        candidates.append(result.candidates)
        selected.append(result.selected)
        near_duplicates += result.near_duplicate_pairs
        skipped += left_out
    all_candidates = np.concatenate(candidates) if candidates else np.zeros(0)
    all_selected = np.concatenate(selected) if selected else np.zeros(0)
    edges = series.histogram_edges(bins)
    return SimilarityRead(
        embedding_model=project.embedding_model,
        near_duplicate_threshold=project.near_duplicate_threshold,
        edges=[round(float(e), 6) for e in edges],
        candidates=series.histogram(all_candidates, edges),
        selected=series.histogram(all_selected, edges),
        candidate_pairs=len(all_candidates),
        selected_pairs=len(all_selected),
        candidate_mean=float(all_candidates.mean()) if len(all_candidates) else None,
        selected_mean=float(all_selected.mean()) if len(all_selected) else None,
        near_duplicate_pairs=near_duplicates,
        prompts=len(prompt_ids),
        prompts_sampled=len(sampled),
        prompts_skipped=skipped,
        max_prompts=max_prompts,
    )


def _block_similarities(
    session: Session, project: Project, prompt_ids: list[uuid.UUID]
) -> tuple[series.PairSimilarities, int] | None:
    """The similarities of one block of prompts and how many were left out for a missing vector."""
    prompts = repository.prompts_with_responses(session, prompt_ids)
    candidates = {p.id: distinct_candidates(p.responses) for p in prompts}
    stored = embedding_repository.vectors_for(
        session, project.embedding_model, [r.text_sha256 for c in candidates.values() for r in c]
    )
    ready = [
        p for p in prompts if candidates[p.id] and all(r.text_sha256 in stored for r in candidates[p.id])
    ]
    if not ready:
        return None
    chosen: dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]] = defaultdict(list)
    for prompt_id, a_id, b_id in repository.chosen_pairs(session, [p.id for p in ready]):
        chosen[prompt_id].append((a_id, b_id))
    indices: list[list[tuple[int, int]]] = []
    for prompt in ready:
        position = {r.id: n for n, r in enumerate(candidates[prompt.id])}
        indices.append(
            [(position[a], position[b]) for a, b in chosen[prompt.id] if a in position and b in position]
        )
    vectors, mask = stack([candidates[p.id] for p in ready], stored)
    result = series.pair_similarities(vectors, mask, project.near_duplicate_threshold, indices)
    return result, len(prompt_ids) - len(ready)
