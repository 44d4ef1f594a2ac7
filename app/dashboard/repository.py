"""The dashboard's queries: labels with their times, queue and lease counts, prompts to sample, exports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, selectinload

from app.exports.models import ExportRun
from app.labels import outcome
from app.labels.repository import SIDE_COLUMNS
from app.pairs.models import Pair, PairSlot
from app.prompts.models import Prompt, PromptStatus
from app.queue.models import Assignment, AssignmentStatus, Label


@dataclass(frozen=True)
class TimedLabel:
    """A stored label in pair terms (app/labels/outcome.pair_side), with when it was stored."""

    labeled_at: datetime
    pair_id: uuid.UUID
    annotator: str
    side: str
    gold: bool


def timed_labels(session: Session, project_id: uuid.UUID) -> list[TimedLabel]:
    """Every label of the project (withdrawn ones are deleted, so never here), oldest first."""
    rows = session.execute(
        select(Label.labeled_at, Label.pair_id, Label.annotator, *SIDE_COLUMNS, Pair.gold_answer)
        .join(Pair, Pair.id == Label.pair_id)
        .where(Label.project_id == project_id)
        .order_by(Label.labeled_at, Label.id)
    )
    return [
        TimedLabel(at, pair_id, annotator, outcome.pair_side(choice, shown_first, a_id), gold is not None)
        for at, pair_id, annotator, choice, shown_first, a_id, gold in rows
    ]


def pairs_by_status(session: Session, project_id: uuid.UUID) -> dict[tuple[str, bool], int]:
    """How many pairs the project has per (status, is gold)."""
    rows = session.execute(
        select(Pair.status, Pair.gold_answer.is_not(None), func.count())
        .where(Pair.project_id == project_id)
        .group_by(Pair.status, Pair.gold_answer.is_not(None))
    )
    return {(status, bool(gold)): int(n) for status, gold, n in rows}


@dataclass(frozen=True)
class OpenSlots:
    """Slots of ordinary pairs still wanting a label, split by whether their pair was handed out before
    and whether a live lease holds them; and the distinct pairs of each group."""

    slots: dict[tuple[bool, bool], int]
    pairs: dict[tuple[bool, bool], int]


def open_slots(session: Session, project_id: uuid.UUID, now: datetime) -> OpenSlots:
    """Not-done slots of the project's non-gold pairs, grouped by (pair released, lease live)."""
    released = Pair.released_at.is_not(None)
    leased = case((PairSlot.lease_expires_at > now, True), else_=False)
    rows = session.execute(
        select(released, leased, func.count(), func.count(PairSlot.pair_id.distinct()))
        .select_from(PairSlot)
        .join(Pair, Pair.id == PairSlot.pair_id)
        .where(PairSlot.project_id == project_id, PairSlot.done.is_(False), Pair.gold_answer.is_(None))
        .group_by(released, leased)
    )
    slots: dict[tuple[bool, bool], int] = {}
    pairs: dict[tuple[bool, bool], int] = {}
    for was_released, is_leased, n_slots, n_pairs in rows:
        key = (bool(was_released), bool(is_leased))
        slots[key], pairs[key] = int(n_slots), int(n_pairs)
    return OpenSlots(slots, pairs)


def _live(project_id: uuid.UUID, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Assignment.project_id == project_id,
        Assignment.status == AssignmentStatus.ACTIVE,
        Assignment.lease_expires_at > now,
    ]


def live_leases(
    session: Session, project_id: uuid.UUID, now: datetime, limit: int
) -> tuple[int, list[Assignment]]:
    """How many live leases the project has, and the ``limit`` that expire soonest."""
    conditions = _live(project_id, now)
    total = session.scalar(select(func.count()).select_from(Assignment).where(*conditions)) or 0
    soonest = session.scalars(
        select(Assignment)
        .where(*conditions)
        .order_by(Assignment.lease_expires_at, Assignment.id)
        .limit(limit)
    )
    return int(total), list(soonest)


def paired_prompt_ids(session: Session, project_id: uuid.UUID) -> list[uuid.UUID]:
    """The ids of the project's paired prompts (those the selection chose pairs for), in id order."""
    return list(
        session.scalars(
            select(Prompt.id)
            .where(Prompt.project_id == project_id, Prompt.status == PromptStatus.PAIRED)
            .order_by(Prompt.id)
        )
    )


def prompts_with_responses(session: Session, prompt_ids: Sequence[uuid.UUID]) -> list[Prompt]:
    """These prompts with their responses loaded, in id order."""
    return list(
        session.scalars(
            select(Prompt)
            .where(Prompt.id.in_(prompt_ids))
            .options(selectinload(Prompt.responses))
            .order_by(Prompt.id)
        )
    )


def chosen_pairs(
    session: Session, prompt_ids: Sequence[uuid.UUID]
) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    """(prompt, response_a, response_b) of every pair the selection chose for these prompts."""
    rows = session.execute(
        select(Pair.prompt_id, Pair.response_a_id, Pair.response_b_id).where(Pair.prompt_id.in_(prompt_ids))
    )
    return [(p, a, b) for p, a, b in rows]


def export_run(session: Session, export_id: uuid.UUID) -> ExportRun | None:
    """One export by id."""
    return session.get(ExportRun, export_id)
