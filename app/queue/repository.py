"""Every query of the annotation queue. Claims are compare-and-set, correct on Postgres and SQLite."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus
from app.queue.models import Assignment, AssignmentStatus


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _free(now: datetime):  # type: ignore[no-untyped-def]
    return or_(PairSlot.lease_expires_at.is_(None), PairSlot.lease_expires_at <= now)


def _held_live(slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime) -> tuple[Any, ...]:
    """The fencing condition: the slot is still open and leased, unexpired, to this assignment."""
    return (
        PairSlot.id == slot_id,
        PairSlot.done.is_(False),
        PairSlot.lease_assignment_id == assignment_id,
        PairSlot.lease_expires_at > now,
    )


def find_claimable_slot(
    session: Session, project_id: uuid.UUID, annotator: str, now: datetime, *, released_only: bool
) -> tuple[uuid.UUID, uuid.UUID, bool] | None:
    """(slot id, pair id, released) of the best free slot for this annotator, locked on Postgres.

    Released pairs come first (finishing spent budget beats opening new pairs), then priority.
    """
    already_has_pair = exists().where(
        Assignment.pair_id == PairSlot.pair_id,
        Assignment.annotator == annotator,
        or_(
            Assignment.status.in_([AssignmentStatus.LABELED, AssignmentStatus.SKIPPED]),
            and_(Assignment.status == AssignmentStatus.ACTIVE, Assignment.lease_expires_at > now),
        ),
    )
    released = Pair.released_at.is_not(None)
    query = (
        select(PairSlot.id, PairSlot.pair_id, released)
        .join(Pair, Pair.id == PairSlot.pair_id)
        .where(PairSlot.project_id == project_id, PairSlot.done.is_(False), _free(now), ~already_has_pair)
        .where(Pair.gold_answer.is_(None))
        .order_by(released.desc(), PairSlot.priority.desc(), PairSlot.id)
        .limit(1)
    )
    if released_only:
        query = query.where(released)
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=PairSlot)
    row = session.execute(query).first()
    return (row[0], row[1], bool(row[2])) if row else None


def take_budget_for_pair(session: Session, project_id: uuid.UUID) -> bool:
    """Count one more released pair against the budget, if the budget allows it."""
    result = session.execute(
        update(Project)
        .where(
            Project.id == project_id,
            or_(
                Project.budget.is_(None),
                Project.pairs_released < Project.budget // Project.annotations_per_pair,
            ),
        )
        .values(pairs_released=Project.pairs_released + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def mark_pair_released(session: Session, pair_id: uuid.UUID, now: datetime) -> bool:
    """Release a pair once; False if another claim released it first.

    Only the pair row is written (never sibling slots, which other claimers may hold locked), and it is
    locked before the project row in every claim, so concurrent claims cannot deadlock.
    """
    result = session.execute(
        update(Pair)
        .where(Pair.id == pair_id, Pair.released_at.is_(None))
        .values(released_at=now, status=PairStatus.RELEASED)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def lease_slot(
    session: Session,
    slot_id: uuid.UUID,
    assignment_id: uuid.UUID,
    annotator: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Compare-and-set the lease: succeeds only if the slot is still open and unleased or expired."""
    result = session.execute(
        update(PairSlot)
        .where(PairSlot.id == slot_id, PairSlot.done.is_(False), _free(now))
        .values(lease_assignment_id=assignment_id, lease_owner=annotator, lease_expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def complete_slot(session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime) -> bool:
    """Close a slot with a label, only while this assignment's lease on it is live (fencing)."""
    result = session.execute(
        update(PairSlot)
        .where(*_held_live(slot_id, assignment_id, now))
        .values(done=True, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def count_label_on_pair(session: Session, pair_id: uuid.UUID, annotations_per_pair: int) -> None:
    """One more label on the pair; done once it has annotations_per_pair."""
    session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(
            labels_count=Pair.labels_count + 1,
            status=case(
                (Pair.labels_count + 1 >= annotations_per_pair, PairStatus.DONE.value), else_=Pair.status
            ),
        )
        .execution_options(synchronize_session=False)
    )


def has_pending_prompts(session: Session, project_id: uuid.UUID) -> bool:
    """Whether prompts are still waiting for embeddings or pairing."""
    return bool(
        session.scalar(
            select(
                exists().where(and_(Prompt.project_id == project_id, Prompt.status == PromptStatus.PENDING))
            )
        )
    )


def extend_lease(
    session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime, expires_at: datetime
) -> bool:
    """Push a live lease's expiry out; False if the lease is no longer this assignment's or has ended."""
    result = session.execute(
        update(PairSlot)
        .where(*_held_live(slot_id, assignment_id, now))
        .values(lease_expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def free_slot(session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime) -> bool:
    """End a live lease early (release or skip), so the slot is claimable at once."""
    result = session.execute(
        update(PairSlot)
        .where(*_held_live(slot_id, assignment_id, now))
        .values(lease_assignment_id=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def reopen_slot(session: Session, slot_id: uuid.UUID, pair_id: uuid.UUID) -> None:
    """Undo a label: the slot wants a label again and the pair is no longer done."""
    session.execute(
        update(PairSlot)
        .where(PairSlot.id == slot_id)
        .values(done=False, lease_assignment_id=None, lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(labels_count=Pair.labels_count - 1, status=PairStatus.RELEASED)
        .execution_options(synchronize_session=False)
    )


def mark_expired(session: Session, now: datetime) -> int:
    """Record ended leases as expired (for metrics; claims never depend on it)."""
    result = session.execute(
        update(Assignment)
        .where(Assignment.status == AssignmentStatus.ACTIVE, Assignment.lease_expires_at <= now)
        .values(status=AssignmentStatus.EXPIRED, ended_at=Assignment.lease_expires_at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def next_gold_pair(session: Session, project_id: uuid.UUID, annotator: str) -> uuid.UUID | None:
    """The first gold pair of the project this annotator has never been assigned."""
    seen = exists().where(Assignment.pair_id == Pair.id, Assignment.annotator == annotator)
    return session.scalar(
        select(Pair.id)
        .where(Pair.project_id == project_id, Pair.gold_answer.is_not(None), ~seen)
        .order_by(Pair.id)
        .limit(1)
    )


def add_leased_slot(
    session: Session,
    project_id: uuid.UUID,
    pair_id: uuid.UUID,
    assignment_id: uuid.UUID,
    annotator: str,
    expires_at: datetime,
) -> uuid.UUID:
    """A new slot on a (gold) pair, leased at once: every annotator answers a gold pair once."""
    number = session.scalar(
        select(func.coalesce(func.max(PairSlot.slot), -1)).where(PairSlot.pair_id == pair_id)
    )
    priority = session.scalar(select(Pair.priority).where(Pair.id == pair_id))
    slot = PairSlot(
        project_id=project_id,
        pair_id=pair_id,
        slot=int(number) + 1,
        priority=priority or 0.0,
        lease_assignment_id=assignment_id,
        lease_owner=annotator,
        lease_expires_at=expires_at,
    )
    session.add(slot)
    session.flush()
    return slot.id
