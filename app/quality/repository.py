"""Queries for the quality snapshot: label totals, staleness, the stored snapshot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.labels.outcome import UNDECIDED
from app.pairs.models import Pair
from app.projects.models import Project
from app.quality.models import QualitySnapshot
from app.queue.models import Label


@dataclass(frozen=True)
class LabelTotals:
    """How many label rows a project has and when the newest was stored."""

    count: int
    newest: datetime | None

    def newer_than(self, snapshot: QualitySnapshot | None) -> bool:
        """True when the snapshot no longer describes these labels (or there is none and labels exist)."""
        if snapshot is None:
            return self.count > 0
        if self.count != snapshot.labels_count_at_compute:
            return True
        return self.newest is not None and self.newest > snapshot.computed_at


def label_totals(session: Session, project_id: uuid.UUID) -> LabelTotals:
    """The project's label count and newest label time (one indexed aggregate)."""
    count, newest = session.execute(
        select(func.count(), func.max(Label.created_at)).where(Label.project_id == project_id)
    ).one()
    return LabelTotals(int(count), newest)


def snapshot(session: Session, project_id: uuid.UUID) -> QualitySnapshot | None:
    """The project's stored snapshot, if one was ever computed."""
    return session.get(QualitySnapshot, project_id)


def stale_projects(session: Session) -> list[uuid.UUID]:
    """Projects whose labels changed since their last snapshot (or that have labels and none)."""
    totals = {
        project_id: LabelTotals(int(count), newest)
        for project_id, count, newest in session.execute(
            select(Label.project_id, func.count(), func.max(Label.created_at)).group_by(Label.project_id)
        )
    }
    snapshots = {s.project_id: s for s in session.scalars(select(QualitySnapshot))}
    stale = [pid for pid, total in totals.items() if total.newer_than(snapshots.get(pid))]
    # Every label undone since the last snapshot: no label rows left to group.
    stale += [pid for pid, s in snapshots.items() if pid not in totals and s.labels_count_at_compute > 0]
    return sorted(stale)


def save_snapshot(session: Session, values: dict[str, Any]) -> None:
    """Insert or replace the project's snapshot (one statement, so concurrent aggregations never collide)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(QualitySnapshot).values(values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["project_id"],
            set_={k: stmt.excluded[k] for k in values if k != "project_id"},
        )
    )


def needs_review(project: Project) -> list[ColumnElement[bool]]:
    """Pairs not reviewed, not gold, that a data team sent to review (POST .../requeue) or that have two or
    more labels and are undecided or agree little."""
    return [
        Pair.project_id == project.id,
        Pair.review_verdict.is_(None),
        Pair.gold_answer.is_(None),
        Pair.review_requested_at.is_not(None)
        | (
            (Pair.labels_count >= 2)
            & ((Pair.outcome == UNDECIDED) | (Pair.agreement < project.review_agreement_threshold))
        ),
    ]


def review_queue(session: Session, project: Project) -> list[Pair]:
    """The pairs needing review, least agreed first."""
    return list(
        session.scalars(
            select(Pair).where(*needs_review(project)).order_by(Pair.agreement.asc().nulls_first(), Pair.id)
        )
    )


def count_needing_review(session: Session, project: Project) -> int:
    """How many pairs the review queue holds now."""
    return int(session.scalar(select(func.count()).select_from(Pair).where(*needs_review(project))) or 0)
