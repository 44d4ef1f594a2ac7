"""Label quality for a project: aggregates per pair, agreement, annotator reliability, gold, review.

Aggregates are written only by the ``quality.aggregate`` task (``app/quality/tasks.py``), never by a GET.
Labels and undos ask for it after commit, at most once per project per
``REAL_QUALITY_AGGREGATE_DEBOUNCE_SECONDS`` (``schedule_aggregate``); the periodic
``quality.aggregate_stale`` sweep catches the labels that arrived inside a window;
``POST .../quality/refresh`` asks for one now. ``GET .../quality`` reads the stored snapshot and says
whether labels changed since (``stale``).
"""

from __future__ import annotations

import logging
import statistics
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app import background
from app.audit import service as audit
from app.auth.context import Caller
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.errors import InvalidInput, NotFound
from app.labels import outcome
from app.labels import repository as label_repository
from app.labels.repository import SIDE_COLUMNS
from app.pairs.models import AnnotatorQuality, Pair, PairReview
from app.projects.models import Project
from app.quality import debounce, repository
from app.quality.agreement import (
    CATEGORIES,
    agreement_with_majority,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    pairwise_cohen,
)
from app.quality.dawid_skene import dawid_skene
from app.quality.models import QualitySnapshot
from app.queue import repository as queue_repository
from app.queue.models import Assignment, AssignmentStatus, Label

log = logging.getLogger(__name__)
AGGREGATE_TASK = "quality.aggregate"


@dataclass
class ProjectLabels:
    """The project's labels on ordinary (non-gold) pairs, as (pair, annotator, pair side); the reviewer
    verdicts of those pairs; and how many labels the project wants per pair."""

    labels: list[tuple[uuid.UUID, str, str]]
    gold: list[tuple[uuid.UUID, str, str, str]]  # (pair, annotator, pair side, gold answer)
    verdicts: dict[uuid.UUID, str] = field(default_factory=dict)
    wanted: int = 1


def load_labels(session: Session, project_id: uuid.UUID) -> ProjectLabels:
    """Every label of the project, split into ordinary and gold, with the labelled pairs' verdicts."""
    rows = session.execute(
        select(Label.pair_id, Label.annotator, *SIDE_COLUMNS, Pair.gold_answer, Pair.review_verdict)
        .join(Pair, Pair.id == Label.pair_id)
        .where(Label.project_id == project_id)
        .order_by(Label.pair_id, Label.annotator)
    ).all()
    wanted = session.scalar(select(Project.annotations_per_pair).where(Project.id == project_id)) or 1
    ordinary, gold, verdicts = [], [], {}
    for pair_id, annotator, choice, shown_first, a_id, gold_answer, verdict in rows:
        value = outcome.pair_side(choice, shown_first, a_id)
        if gold_answer is None:
            ordinary.append((pair_id, annotator, value))
            if verdict is not None:
                verdicts[pair_id] = verdict
        else:
            gold.append((pair_id, annotator, value, gold_answer))
    return ProjectLabels(ordinary, gold, verdicts, wanted)


@dataclass
class Aggregates:
    """What one aggregation computed, ready to store."""

    computed_at: datetime
    pair_rows: list[dict[str, Any]]
    annotator_rows: list[dict[str, Any]]
    snapshot: dict[str, Any]

    @property
    def decided_pairs(self) -> int:
        """Pairs a response won (the reward model's comparisons)."""
        return sum(1 for row in self.pair_rows if row["outcome"] in ("a", "b"))


def compute(project_id: uuid.UUID, data: ProjectLabels, now: datetime) -> Aggregates:
    """Outcome (app/labels/outcome.py) and Dawid-Skene per pair, reliability per annotator, and the snapshot
    (no database)."""
    by_pair: dict[uuid.UUID, list[str]] = defaultdict(list)
    for pair_id, _annotator, value in data.labels:
        by_pair[pair_id].append(value)
    overlapping = any(len(v) >= 2 for v in by_pair.values())
    ds = dawid_skene(data.labels, CATEGORIES, tol=1e-4) if data.labels and overlapping else None
    pair_rows = []
    for pair_id, values in by_pair.items():
        decided = outcome.decide(outcome.count(values), data.verdicts.get(pair_id), data.wanted)
        pair_rows.append(
            {
                "id": pair_id,
                "outcome": outcome.stored(decided),
                "agreement": decided.agreement,
                "ds_choice": ds.predicted(pair_id) if ds else None,
                "ds_posterior": {k: round(v, 6) for k, v in ds.posteriors[pair_id].items()} if ds else None,
            }
        )
    with_majority = agreement_with_majority(data.labels)
    annotator_rows = [
        {
            "project_id": project_id,
            "annotator": a,
            "reliability": ds.reliability.get(a) if ds else None,
            "agreement_with_majority": with_majority.get(a),
            "updated_at": now,
            "id": uuid.uuid4(),
        }
        for a in sorted({a for _, a, _ in data.labels})
    ]
    fleiss = fleiss_kappa(data.labels)
    snapshot = {
        "project_id": project_id,
        "computed_at": now,
        "labels_count_at_compute": len(data.labels) + len(data.gold),
        "labels": len(data.labels),
        "gold_labels": len(data.gold),
        "pairs_labelled": len(by_pair),
        "pairs_with_overlap": sum(1 for v in by_pair.values() if len(v) >= 2),
        "krippendorff_alpha": krippendorff_alpha_nominal(data.labels),
        "fleiss": {
            "kappa": fleiss.kappa,
            "raters": fleiss.raters,
            "items": fleiss.items,
            "items_left_out": fleiss.items_left_out,
        },
        "cohen": [
            {"annotators": list(key), "kappa": result.kappa, "items": result.items}
            for key, result in pairwise_cohen(data.labels).items()
        ],
        "dawid_skene": {"iterations": ds.iterations, "converged": ds.converged, "priors": ds.priors}
        if ds
        else None,
    }
    return Aggregates(now, pair_rows, annotator_rows, snapshot)


def store(session: Session, project_id: uuid.UUID, computed: Aggregates) -> QualitySnapshot:
    """Write what compute() found: one executemany for the pairs, one upsert for the annotators."""
    if computed.pair_rows:
        # ORM bulk UPDATE by primary key: one executemany, not a statement per pair (the write lock, a
        # single one on SQLite, is held for this transaction only).
        session.execute(update(Pair), computed.pair_rows)
    if computed.annotator_rows:
        insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        stmt = insert(AnnotatorQuality).values(computed.annotator_rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["project_id", "annotator"],
                set_={
                    "reliability": stmt.excluded.reliability,
                    "agreement_with_majority": stmt.excluded.agreement_with_majority,
                    "updated_at": stmt.excluded.updated_at,
                },
            )
        )
    repository.save_snapshot(session, computed.snapshot)
    session.flush()
    return session.get_one(QualitySnapshot, project_id, populate_existing=True)


def aggregate(session: Session, project: Project) -> QualitySnapshot:
    """Recompute and store outcome and Dawid-Skene per pair, reliability per annotator, and the snapshot."""
    # Taken before the labels are read: a label stored after this moment makes the snapshot stale.
    now = utcnow()
    return store(session, project.id, compute(project.id, load_labels(session, project.id), now))


def compute_if_stale(session: Session, project_id: uuid.UUID, *, force: bool = False) -> Aggregates | None:
    """The project's aggregates, computed from ``session`` (read-only), unless its snapshot is current (or
    the project is gone): None then."""
    if session.get(Project, project_id) is None:
        return None
    if not force and not repository.label_totals(session, project_id).newer_than(
        repository.snapshot(session, project_id)
    ):
        return None
    now = utcnow()  # before the labels are read: a label stored after it makes the snapshot stale
    return compute(project_id, load_labels(session, project_id), now)


def store_if_present(session: Session, project_id: uuid.UUID, computed: Aggregates) -> QualitySnapshot | None:
    """Store computed aggregates unless the project was deleted meanwhile."""
    if session.get(Project, project_id) is None:
        return None
    return store(session, project_id, computed)


def _first_in_window(project_id: uuid.UUID) -> bool:
    settings = get_settings()
    return debounce.first_in_window(
        f"quality:{project_id}", settings.quality_aggregate_debounce_seconds, debounce.redis_url(settings)
    )


def schedule_aggregate(session: Session, project_id: uuid.UUID) -> None:
    """Aggregate the project after this unit of work commits, at most once per project per window."""
    if _first_in_window(project_id):
        send_after_commit(session, AGGREGATE_TASK, project_id=str(project_id))


def schedule_aggregate_now(project_id: uuid.UUID) -> bool:
    """As schedule_aggregate, for a label already committed (app/queue/fastlane.py has no unit of work);
    True if it was sent (the first in its window)."""
    if not _first_in_window(project_id):
        return False
    background.dispatch(AGGREGATE_TASK, {"project_id": str(project_id)})
    return True


def request_refresh(session: Session, project: Project) -> QualitySnapshot | None:
    """Aggregate the project now (after commit), whatever the window; returns the snapshot it will replace."""
    send_after_commit(session, AGGREGATE_TASK, project_id=str(project.id), force=True)
    return repository.snapshot(session, project.id)


def read_quality(session: Session, project: Project) -> dict[str, Any]:
    """The stored snapshot (no writes), whether labels changed since it, and the review queue's size now."""
    stored = repository.snapshot(session, project.id)
    stale = repository.label_totals(session, project.id).newer_than(stored)
    needing_review = repository.count_needing_review(session, project)
    if stored is None:
        return {
            "labels": 0,
            "gold_labels": 0,
            "pairs_labelled": 0,
            "pairs_with_overlap": 0,
            "krippendorff_alpha": None,
            "fleiss_kappa": {"kappa": None, "raters": 0, "items": 0, "items_left_out": 0},
            "cohen_kappa": [],
            "dawid_skene": None,
            "pairs_needing_review": needing_review,
            "computed_at": None,
            "stale": stale,
        }
    return {
        "labels": stored.labels,
        "gold_labels": stored.gold_labels,
        "pairs_labelled": stored.pairs_labelled,
        "pairs_with_overlap": stored.pairs_with_overlap,
        "krippendorff_alpha": stored.krippendorff_alpha,
        "fleiss_kappa": stored.fleiss,
        "cohen_kappa": stored.cohen,
        "dawid_skene": stored.dawid_skene,
        "pairs_needing_review": needing_review,
        "computed_at": stored.computed_at,
        "stale": stale,
    }


def review_queue(session: Session, project: Project) -> list[Pair]:
    """Pairs with at least two labels whose agreement is low or whose majority is tied, not yet reviewed."""
    return repository.review_queue(session, project)


def review(
    session: Session, caller: Caller, project: Project, pair_id: uuid.UUID, verdict: str, note: str | None
) -> PairReview:
    """Record a reviewer's verdict; it overrides the aggregates (the newest verdict wins)."""
    pair = _pair(session, project, pair_id)
    row = PairReview(pair_id=pair.id, reviewer=caller.name, verdict=verdict, note=note)
    session.add(row)
    pair.review_verdict = verdict
    # The verdict decides the outcome now, not at the next aggregation.
    decided = label_repository.outcomes(session, [pair], project.annotations_per_pair)[pair.id]
    pair.outcome, pair.agreement = outcome.stored(decided), decided.agreement
    session.flush()
    audit.record(session, caller, "pair.reviewed", "pair", pair.id, {"verdict": verdict, "note": note})
    return row


def set_gold(
    session: Session, caller: Caller, project: Project, pair_id: uuid.UUID, answer: str | None
) -> Pair:
    """Mark a pair as a gold check with its known answer (None unmarks it)."""
    pair = _pair(session, project, pair_id)
    if (
        answer is not None
        and pair.released_at is not None
        and pair.labels_count > 0
        and pair.gold_answer is None
    ):
        raise InvalidInput(
            "this pair already has ordinary labels; pick another pair as gold", field="pair_id"
        )
    changed = pair.gold_answer != answer
    pair.gold_answer = answer
    session.flush()
    audit.record(session, caller, "pair.gold_set", "pair", pair.id, {"answer": answer})
    if changed and pair.labels_count > 0:
        # Its labels move between gold and ordinary: the snapshot changes although no label did.
        send_after_commit(session, AGGREGATE_TASK, project_id=str(project.id), force=True)
    return pair


def _pair(session: Session, project: Project, pair_id: uuid.UUID) -> Pair:
    pair = session.get(Pair, pair_id)
    if pair is None or pair.project_id != project.id:
        raise NotFound(f"no pair {pair_id} in project {project.id}")
    return pair


def annotator_stats(session: Session, project: Project) -> list[dict[str, Any]]:
    """Per annotator: labels, median seconds per label, skip rate, gold accuracy, agreement, reliability."""
    data = load_labels(session, project.id)
    timings: dict[str, list[float]] = defaultdict(list)
    for annotator, claimed, labelled in session.execute(
        select(Assignment.annotator, Assignment.created_at, Label.labeled_at)
        .join(Label, Label.assignment_id == Assignment.id)
        .where(Assignment.project_id == project.id)
    ):
        timings[annotator].append((labelled - claimed).total_seconds())
    skips = dict(
        session.execute(
            select(Assignment.annotator, func.count())
            .where(Assignment.project_id == project.id, Assignment.status == AssignmentStatus.SKIPPED)
            .group_by(Assignment.annotator)
        ).all()
    )
    gold: dict[str, list[bool]] = defaultdict(list)
    for _pair, annotator, value, answer in data.gold:
        gold[annotator].append(value == answer)
    stored = {
        q.annotator: q
        for q in session.scalars(select(AnnotatorQuality).where(AnnotatorQuality.project_id == project.id))
    }
    with_majority = agreement_with_majority(data.labels)
    out = []
    for annotator in sorted(set(timings) | set(skips) | set(gold)):
        labels = len(timings.get(annotator, []))
        skipped = skips.get(annotator, 0)
        answers = gold.get(annotator, [])
        accuracy = sum(answers) / len(answers) if answers else None
        out.append(
            {
                "annotator": annotator,
                "labels": labels,
                "median_seconds_per_label": statistics.median(timings[annotator])
                if timings.get(annotator)
                else None,
                "skips": skipped,
                "skip_rate": skipped / (labels + skipped) if labels + skipped else None,
                "gold_answered": len(answers),
                "gold_accuracy": accuracy,
                "flagged": accuracy is not None
                and len(answers) >= 3
                and accuracy < project.gold_min_accuracy,
                "agreement_with_majority": with_majority.get(annotator),
                "reliability": stored[annotator].reliability if annotator in stored else None,
            }
        )
    return out


def progress(session: Session, project: Project, annotator: str, since: datetime) -> dict[str, Any]:
    """One annotator's own progress in a project: labels and skips since a time (the start of their day),
    labels in all, and their gold answers (correct when the label's pair side is the gold answer)."""
    labels_since = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(Label.project_id == project.id, Label.annotator == annotator, Label.labeled_at >= since)
    )
    labels_total = session.scalar(
        select(func.count())
        .select_from(Label)
        .where(Label.project_id == project.id, Label.annotator == annotator)
    )
    skips_since = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.project_id == project.id,
            Assignment.annotator == annotator,
            Assignment.status == AssignmentStatus.SKIPPED,
            Assignment.ended_at >= since,
        )
    )
    answers = [
        outcome.pair_side(choice, shown_first, a_id) == gold_answer
        for choice, shown_first, a_id, gold_answer in session.execute(
            select(*SIDE_COLUMNS, Pair.gold_answer)
            .join(Pair, Pair.id == Label.pair_id)
            .where(
                Label.project_id == project.id, Label.annotator == annotator, Pair.gold_answer.is_not(None)
            )
        )
    ]
    return {
        "annotator": annotator,
        "since": since,
        "labels_since": int(labels_since or 0),
        "skips_since": int(skips_since or 0),
        "labels_total": int(labels_total or 0),
        "gold_enabled": project.gold_rate > 0,
        "gold_answered": len(answers),
        "gold_correct": sum(answers),
        "gold_accuracy": sum(answers) / len(answers) if answers else None,
    }


def review_pair(session: Session, project: Project, pair_id: uuid.UUID) -> dict[str, Any]:
    """A pair as a reviewer sees it: the prompt, both responses in pair terms (no model names), its labels
    in pair terms, and what they decide now."""
    pair = _pair(session, project, pair_id)
    shown = queue_repository.shown_pair(session, pair.id)
    labels = [
        {
            "side": outcome.pair_side(choice, shown_first, a_id),
            "confidence": confidence,
            "rationale": rationale,
        }
        for choice, shown_first, a_id, confidence, rationale in session.execute(
            select(*SIDE_COLUMNS, Label.confidence, Label.rationale)
            .join(Pair, Pair.id == Label.pair_id)
            .where(Label.pair_id == pair.id)
            .order_by(Label.labeled_at)
        )
    ]
    decided = label_repository.outcomes(session, [pair], project.annotations_per_pair)[pair.id]
    return {
        "pair_id": pair.id,
        "prompt": shown.prompt,
        "instructions": project.instructions,
        "response_a": {"id": shown.response_a_id, "text": shown.response_a_text},
        "response_b": {"id": shown.response_b_id, "text": shown.response_b_text},
        "labels": labels,
        "outcome": outcome.stored(decided),
        "agreement": decided.agreement,
        "review_verdict": pair.review_verdict,
    }
