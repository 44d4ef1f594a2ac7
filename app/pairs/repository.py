"""Queries and writes on pairs: the project's list, and for redundancy which are labelled, which may be held
back, and the marking.

Marking never touches a pair that was handed out. The lock order matches a claim's (slot, then pair): the
candidate pairs' slots are locked first (``FOR UPDATE`` on Postgres, waiting for a claim that holds one),
then ``UPDATE pair ... WHERE released_at IS NULL`` sees any release that claim committed, then the slots of
the pairs actually changed are closed (or reopened). SQLite serialises writers, so it needs no row locks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Row, exists, func, null, select, text, update
from sqlalchemy.orm import Session, aliased

from app.api.pagination import PageRows, paginate_rows
from app.pairs.models import Pair, PairSlot, PairStatus
from app.prompts.models import Prompt, Response
from app.queue.models import Label

# IN-list size per statement: well under every driver's parameter limit.
CHUNK = 500


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def page_with_responses(
    session: Session, project_id: uuid.UUID, *, status: PairStatus | None, limit: int, cursor: str | None
) -> PageRows[Row[Pair, str, Response, Response]]:
    """A page of the project's pairs in creation order: pair, prompt external id, response A, response B."""
    response_a, response_b = aliased(Response), aliased(Response)
    query = (
        select(Pair, Prompt.external_id, response_a, response_b)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(response_a, response_a.id == Pair.response_a_id)
        .join(response_b, response_b.id == Pair.response_b_id)
        .where(Pair.project_id == project_id)
    )
    if status is not None:
        query = query.where(Pair.status == status)
    return paginate_rows(session, query, Pair.id, limit=limit, cursor=cursor)


@dataclass(frozen=True)
class LabelledResponse:
    """A response of a pair that has at least one (ordinary) label."""

    pair_id: uuid.UUID
    response_id: uuid.UUID
    text_sha256: str


@dataclass(frozen=True)
class CandidatePair:
    """A pair never handed out (queued or redundant), with its two responses' text hashes."""

    pair_id: uuid.UUID
    status: str
    response_a_id: uuid.UUID
    response_a_sha256: str
    response_b_id: uuid.UUID
    response_b_sha256: str


def labelled_responses(session: Session, project_id: uuid.UUID) -> list[LabelledResponse]:
    """Both responses of each non-gold pair of the project with a label, in pair order (a before b)."""
    labelled = exists().where(Label.pair_id == Pair.id)
    a, b = aliased(Response), aliased(Response)
    rows = session.execute(
        select(Pair.id, a.id, a.text_sha256, b.id, b.text_sha256)
        .join(a, a.id == Pair.response_a_id)
        .join(b, b.id == Pair.response_b_id)
        .where(Pair.project_id == project_id, Pair.gold_answer.is_(None), labelled)
        .order_by(Pair.id)
    ).all()
    out: list[LabelledResponse] = []
    for pair_id, a_id, a_sha, b_id, b_sha in rows:
        out.append(LabelledResponse(pair_id, a_id, a_sha))
        out.append(LabelledResponse(pair_id, b_id, b_sha))
    return out


def candidate_pairs(session: Session, project_id: uuid.UUID) -> list[CandidatePair]:
    """The project's non-gold pairs never handed out, queued or redundant, in id order."""
    a, b = aliased(Response), aliased(Response)
    rows = session.execute(
        select(Pair.id, Pair.status, a.id, a.text_sha256, b.id, b.text_sha256)
        .join(a, a.id == Pair.response_a_id)
        .join(b, b.id == Pair.response_b_id)
        .where(
            Pair.project_id == project_id,
            Pair.released_at.is_(None),
            Pair.gold_answer.is_(None),
            Pair.status.in_([PairStatus.QUEUED, PairStatus.REDUNDANT]),
        )
        .order_by(Pair.id)
    ).all()
    return [CandidatePair(*row) for row in rows]


def redundant_pair_ids(session: Session, project_id: uuid.UUID) -> list[uuid.UUID]:
    """The project's pairs held back as redundant, in id order."""
    return list(
        session.scalars(
            select(Pair.id)
            .where(Pair.project_id == project_id, Pair.status == PairStatus.REDUNDANT)
            .order_by(Pair.id)
        )
    )


def count_redundant(session: Session, project_id: uuid.UUID) -> int:
    """How many of the project's pairs are held back as redundant."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Pair)
            .where(Pair.project_id == project_id, Pair.status == PairStatus.REDUNDANT)
        )
        or 0
    )


def lock_redundancy(session: Session, project_id: uuid.UUID) -> None:
    """Serialise redundancy writes of one project (marking, and turning the setting off) until COMMIT.

    A transaction-scoped advisory lock on Postgres, taken before any row lock; SQLite serialises writers.
    Without it a marking that read the setting as on could commit after a PATCH turned it off and restored
    the redundant pairs, leaving pairs held back under a project that no longer skips any.
    """
    if _is_postgres(session):
        key = int.from_bytes(project_id.bytes[:8], "big", signed=True) ^ 0x5245_4455_4E44  # "REDUND"
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _lock_slots(session: Session, pair_ids: Sequence[uuid.UUID]) -> None:
    """Lock these pairs' slots in id order (a claim holding one is waited for)."""
    if not _is_postgres(session):
        return
    session.execute(
        select(PairSlot.id).where(PairSlot.pair_id.in_(pair_ids)).order_by(PairSlot.id).with_for_update()
    ).all()


def _locked_chunks(session: Session, pair_ids: Iterable[uuid.UUID]) -> Iterator[list[uuid.UUID]]:
    """The pair ids in sorted chunks of CHUNK, each chunk's slots locked before it is handed over."""
    ids = sorted(pair_ids)
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        _lock_slots(session, chunk)
        yield chunk


def mark_redundant(session: Session, reasons: dict[uuid.UUID, dict[str, Any]]) -> list[uuid.UUID]:
    """Hold back these queued pairs (with their reason) unless handed out meanwhile; returns those marked."""
    marked: list[uuid.UUID] = []
    for chunk in _locked_chunks(session, reasons):
        done = list(
            session.scalars(
                update(Pair)
                .where(
                    Pair.id.in_(chunk),
                    Pair.released_at.is_(None),
                    Pair.status == PairStatus.QUEUED,
                    Pair.gold_answer.is_(None),
                )
                .values(status=PairStatus.REDUNDANT)
                .returning(Pair.id)
                .execution_options(synchronize_session=False)
            )
        )
        if not done:
            continue
        # ORM bulk UPDATE by primary key: one reason per pair.
        session.execute(
            update(Pair), [{"id": pair_id, "redundant_with": reasons[pair_id]} for pair_id in done]
        )
        session.execute(
            update(PairSlot)
            .where(PairSlot.pair_id.in_(done))
            .values(done=True)
            .execution_options(synchronize_session=False)
        )
        marked.extend(done)
    return marked


def restore_redundant(session: Session, pair_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Queue these redundant pairs again (their slots reopened); returns those restored."""
    restored: list[uuid.UUID] = []
    for chunk in _locked_chunks(session, pair_ids):
        done = list(
            session.scalars(
                update(Pair)
                .where(Pair.id.in_(chunk), Pair.status == PairStatus.REDUNDANT)
                .values(status=PairStatus.QUEUED, redundant_with=null())
                .returning(Pair.id)
                .execution_options(synchronize_session=False)
            )
        )
        if not done:
            continue
        # A redundant pair was never handed out, so none of its slots was ever leased or labelled.
        session.execute(
            update(PairSlot)
            .where(PairSlot.pair_id.in_(done), PairSlot.lease_assignment_id.is_(None))
            .values(done=False)
            .execution_options(synchronize_session=False)
        )
        restored.extend(done)
    return restored
