"""Every query of the annotation queue. Claims are compare-and-set, correct on Postgres and SQLite."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from app.db.types import UTCDateTime
from app.labels import outcome
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project, ProjectBudget
from app.prompts.models import Prompt, PromptStatus, Response
from app.queue import budget
from app.queue.models import Assignment, AssignmentStatus, Label


def is_postgres(session: Session) -> bool:
    """Postgres runs the claim and the label as one SQL function each; SQLite as statements from here."""
    return session.get_bind().dialect.name == "postgresql"


def _core(session: Session) -> Connection:
    """The unit of work's connection: hot-path statements are Core, skipping ORM bookkeeping."""
    return session.connection()


# The claim and label statements are built once, with bind parameters, and reused: building a statement
# (and adapting aliased entities) costs several times more CPU than executing it (bench/queue.py).
_now = bindparam("b_now", type_=UTCDateTime())


def _free() -> Any:
    return or_(PairSlot.lease_expires_at.is_(None), PairSlot.lease_expires_at <= _now)


def _held_live() -> tuple[Any, ...]:
    """The fencing condition: the slot is still open and leased, unexpired, to this assignment."""
    return (
        PairSlot.id == bindparam("b_slot"),
        not_(PairSlot.done),
        PairSlot.lease_assignment_id == bindparam("b_assignment"),
        PairSlot.lease_expires_at > _now,
    )


def _candidate(*, released_only: bool) -> Any:
    annotator: BindParameter[str] = bindparam("b_annotator")
    project_id: BindParameter[uuid.UUID] = bindparam("b_project")
    already_has_pair = exists().where(
        Assignment.pair_id == PairSlot.pair_id,
        Assignment.annotator == annotator,
        or_(
            Assignment.status.in_([AssignmentStatus.LABELED, AssignmentStatus.SKIPPED]),
            and_(Assignment.status == AssignmentStatus.ACTIVE, Assignment.lease_expires_at > _now),
        ),
    )
    gold_pairs = select(Pair.id).where(Pair.project_id == project_id, Pair.gold_answer.is_not(None))
    candidate = (
        select(PairSlot.id.label("id"), PairSlot.pair_id, PairSlot.released.label("was_released"))
        # Spelled as the partial index's own predicate: SQLite renders not_(done) as `done = 0`, which its
        # planner cannot match to `WHERE NOT done`, and then scans and sorts every slot (1 ms per claim with
        # 3,000 pairs against 0.03 ms).
        .where(
            PairSlot.project_id == project_id,
            literal_column("NOT pair_slot.done"),
            _free(),
            ~already_has_pair,
        )
        .where(PairSlot.pair_id.not_in(gold_pairs))
        .order_by(PairSlot.released.desc(), PairSlot.priority.desc(), PairSlot.id)
        .limit(1)
    )
    if released_only:
        candidate = candidate.where(PairSlot.released)
    return candidate


_LEASE_VALUES = {
    "lease_assignment_id": bindparam("b_assignment"),
    "lease_owner": bindparam("b_annotator"),
    "lease_expires_at": bindparam("b_expires", type_=UTCDateTime()),
    "released": True,
}


# SQLite (Postgres claims in real_queue_claim): one writer at a time (every transaction is BEGIN IMMEDIATE),
# so a read then a write is atomic.
_CANDIDATE_SQLITE = {
    released_only: _candidate(released_only=released_only) for released_only in (True, False)
}
_LEASE_SQLITE = update(PairSlot).where(PairSlot.id == bindparam("b_slot")).values(**_LEASE_VALUES)


def claim_slot(
    session: Session,
    project_id: uuid.UUID,
    annotator: str,
    assignment_id: uuid.UUID,
    now: datetime,
    expires_at: datetime,
    *,
    released_only: bool,
) -> tuple[uuid.UUID, uuid.UUID, bool] | None:
    """SQLite: lease the best free slot for this annotator: (slot id, pair id, was released).

    Walked in the order of ix_pair_slot_claimable, so no sort: slots of released pairs first (finishing
    spent budget beats opening new pairs), then priority. Gold pairs are handed out by the gold path only.
    """
    params = {
        "b_project": project_id,
        "b_annotator": annotator,
        "b_assignment": assignment_id,
        "b_now": now,
        "b_expires": expires_at,
    }
    found = _core(session).execute(_CANDIDATE_SQLITE[released_only], params).first()
    if found is None:
        return None
    _core(session).execute(_LEASE_SQLITE, {**params, "b_slot": found[0]})
    return found[0], found[1], bool(found[2])


_UNLEASE = (
    update(PairSlot)
    .where(PairSlot.id == bindparam("b_slot"))
    .values(lease_assignment_id=None, lease_owner=None, lease_expires_at=None, released=False)
)
_UNRELEASE = (
    update(Pair).where(Pair.id == bindparam("b_pair")).values(released_at=None, status=PairStatus.QUEUED)
)


_DELETE_ASSIGNMENT = delete(Assignment).where(Assignment.id == bindparam("b_assignment"))


def unclaim_slot(session: Session, slot_id: uuid.UUID, pair_id: uuid.UUID, assignment_id: uuid.UUID) -> None:
    """Undo a claim whose pair the budget refused (same transaction: nobody saw it)."""
    _core(session).execute(_DELETE_ASSIGNMENT, {"b_assignment": assignment_id})
    _core(session).execute(_UNLEASE, {"b_slot": slot_id})
    _core(session).execute(_UNRELEASE, {"b_pair": pair_id})


_SIBLINGS = (
    update(PairSlot)
    .where(PairSlot.pair_id == bindparam("b_pair"), not_(PairSlot.released))
    .values(released=True)
)


def mark_siblings_released(session: Session, pair_id: uuid.UUID) -> None:
    """SQLite: flag the other slots of a just-released pair, so they sort first.

    (reconcile_released_flags mends a flag a crashed transaction left.)
    """
    _core(session).execute(_SIBLINGS, {"b_pair": pair_id})


def reconcile_released_flags(session: Session) -> int:
    """Set pair_slot.released where the pair is released but the flag is not (maintenance)."""
    released_pairs = select(Pair.id).where(Pair.released_at.is_not(None))
    result = session.execute(
        update(PairSlot)
        .where(not_(PairSlot.released), not_(PairSlot.done), PairSlot.pair_id.in_(released_pairs))
        .values(released=True)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


_LIVE_LEASES = (
    select(Assignment.lease_expires_at)
    .where(Assignment.annotator == bindparam("b_annotator"), Assignment.status == AssignmentStatus.ACTIVE)
    .where(Assignment.lease_expires_at > _now)
    .order_by(Assignment.lease_expires_at)
)


def live_lease_expiries(session: Session, annotator: str, now: datetime) -> list[datetime]:
    """When each of the annotator's live leases ends, soonest first (ix_assignment_active_annotator)."""
    return list(_core(session).execute(_LIVE_LEASES, {"b_annotator": annotator, "b_now": now}).scalars())


@dataclass(frozen=True)
class ShownPair:
    prompt: Any
    response_a_id: uuid.UUID
    response_a_text: str
    response_b_id: uuid.UUID
    response_b_text: str


def _shown_statement() -> Any:
    ra, rb = aliased(Response), aliased(Response)
    return (
        select(Prompt.prompt, ra.id, ra.text, rb.id, rb.text)
        .select_from(Pair)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(Pair.id == bindparam("b_pair"))
    )


_SHOWN = _shown_statement()


def shown_pair(session: Session, pair_id: uuid.UUID) -> ShownPair:
    """What an annotator sees of a pair: the prompt and both texts, in one query."""
    return ShownPair(*_core(session).execute(_SHOWN, {"b_pair": pair_id}).one())


_INSERT_ASSIGNMENT = insert(Assignment)


def insert_assignment(session: Session, **values: Any) -> None:
    """One assignment row (Core insert: the claim needs no ORM object)."""
    _core(session).execute(_INSERT_ASSIGNMENT, values)


# The budget rule (app/queue/budget.py) as SQL, for the conditional UPDATEs that move the counters:
# labels the budget has left besides those already released or asked for (NULL: unlimited).
_ROOM = (
    select(
        Project.budget
        - ProjectBudget.pairs_released * Project.annotations_per_pair
        - ProjectBudget.extra_labels
    )
    .where(Project.id == ProjectBudget.project_id)
    .scalar_subquery()
)
_PER_PAIR = (
    select(Project.annotations_per_pair).where(Project.id == ProjectBudget.project_id).scalar_subquery()
)
_TAKE_BUDGET = (
    update(ProjectBudget)
    .where(ProjectBudget.project_id == bindparam("b_project"), or_(_ROOM.is_(None), _ROOM >= _PER_PAIR))
    .values(pairs_released=ProjectBudget.pairs_released + 1)
)
_TAKE_EXTRA_LABEL = (
    update(ProjectBudget)
    .where(ProjectBudget.project_id == bindparam("b_project"), or_(_ROOM.is_(None), _ROOM >= 1))
    .values(extra_labels=ProjectBudget.extra_labels + 1)
)
_RELEASED = select(ProjectBudget.pairs_released).where(ProjectBudget.project_id == bindparam("b_project"))
_SPENT = select(ProjectBudget.pairs_released, ProjectBudget.extra_labels).where(
    ProjectBudget.project_id == bindparam("b_project")
)


def pairs_released(session: Session, project_id: uuid.UUID) -> int:
    """How many pairs of the project were handed out at least once (its budget counter)."""
    return int(_core(session).execute(_RELEASED, {"b_project": project_id}).scalar_one())


def spent(session: Session, project_id: uuid.UUID) -> budget.Spent:
    """The project's budget counters: pairs released and extra labels asked for."""
    released, extra = _core(session).execute(_SPENT, {"b_project": project_id}).one()
    return budget.Spent(int(released), int(extra))


def take_extra_label(session: Session, project_id: uuid.UUID) -> bool:
    """Count one more asked-for label against the budget, if the budget allows it (app/queue/budget.py:
    can_add_label); the counter row stays locked until COMMIT, as a claim's."""
    return _core(session).execute(_TAKE_EXTRA_LABEL, {"b_project": project_id}).rowcount == 1


def take_budget_for_pair(session: Session, project_id: uuid.UUID) -> bool:
    """Count one more released pair against the budget, if the budget allows it."""
    return _core(session).execute(_TAKE_BUDGET, {"b_project": project_id}).rowcount == 1


_RELEASE_PAIR = (
    update(Pair)
    .where(Pair.id == bindparam("b_pair"), Pair.released_at.is_(None))
    .values(released_at=_now, status=PairStatus.RELEASED)
)


def mark_pair_released(session: Session, pair_id: uuid.UUID, now: datetime) -> bool:
    """Release a pair once; False if another claim released it first.

    Claims lock their slot first, then the pair row, then the budget counter, always in this
    order, so concurrent claims cannot deadlock.
    """
    return _core(session).execute(_RELEASE_PAIR, {"b_pair": pair_id, "b_now": now}).rowcount == 1


_COMPLETE = update(PairSlot).where(*_held_live()).values(done=True, lease_expires_at=None)


def complete_slot(session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime) -> bool:
    """Close a slot with a label, only while this assignment's lease on it is live (fencing)."""
    params = {"b_slot": slot_id, "b_assignment": assignment_id, "b_now": now}
    return _core(session).execute(_COMPLETE, params).rowcount == 1


_WANTED = select(Project.annotations_per_pair).where(Project.id == Pair.project_id).scalar_subquery()
_COUNT_LABEL = (
    update(Pair)
    .where(Pair.id == bindparam("b_pair"))
    .values(
        labels_count=Pair.labels_count + 1,
        status=case((Pair.labels_count + 1 >= _WANTED, PairStatus.DONE.value), else_=Pair.status),
    )
)


def count_label_on_pair(session: Session, pair_id: uuid.UUID) -> None:
    """One more label on the pair; done once it has its project's annotations_per_pair."""
    _core(session).execute(_COUNT_LABEL, {"b_pair": pair_id})


_INSERT_LABEL = insert(Label)
_LABELED = (
    update(Assignment)
    .where(Assignment.id == bindparam("b_assignment"))
    .values(status=AssignmentStatus.LABELED, ended_at=_now)
)


def insert_label(session: Session, values: dict[str, Any]) -> None:
    """One label row, and its assignment marked labelled (Core: the label path needs no ORM flush)."""
    _core(session).execute(_INSERT_LABEL, values)
    _core(session).execute(_LABELED, {"b_assignment": values["assignment_id"], "b_now": values["labeled_at"]})


def has_pending_prompts(session: Session, project_id: uuid.UUID) -> bool:
    """Whether prompts are still waiting for embeddings or pairing."""
    return bool(
        session.scalar(
            select(
                exists().where(and_(Prompt.project_id == project_id, Prompt.status == PromptStatus.PENDING))
            )
        )
    )


_EXTEND = (
    update(PairSlot).where(*_held_live()).values(lease_expires_at=bindparam("b_expires", type_=UTCDateTime()))
)
_FREE = (
    update(PairSlot)
    .where(*_held_live())
    .values(lease_assignment_id=None, lease_owner=None, lease_expires_at=None)
)


def extend_lease(
    session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime, expires_at: datetime
) -> bool:
    """Push a live lease's expiry out; False if the lease is no longer this assignment's or has ended."""
    params = {"b_slot": slot_id, "b_assignment": assignment_id, "b_now": now, "b_expires": expires_at}
    return _core(session).execute(_EXTEND, params).rowcount == 1


def free_slot(session: Session, slot_id: uuid.UUID, assignment_id: uuid.UUID, now: datetime) -> bool:
    """End a live lease early (release or skip), so the slot is claimable at once."""
    params = {"b_slot": slot_id, "b_assignment": assignment_id, "b_now": now}
    return _core(session).execute(_FREE, params).rowcount == 1


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
        slot=int(number if number is not None else -1) + 1,
        priority=priority or 0.0,
        lease_assignment_id=assignment_id,
        lease_owner=annotator,
        lease_expires_at=expires_at,
    )
    session.add(slot)
    session.flush()
    return slot.id


# Postgres: the claim and the label are SQL functions (app/queue/sql/*.sql, installed by migrations), one
# round trip each. The `_as` forms first resolve the API key by its HMAC and check the caller may act.
_CLAIM_FN = text("SELECT * FROM real_queue_claim(:project, :annotator, :now, :cap, :gold_draw)")
_LABEL_FN = text(
    "SELECT * FROM real_queue_label(:assignment, :choice, :confidence, :rationale, :idempotency_key, "
    ":fingerprint, :now, :label_id, :created_at)"
)
_CLAIM_AS_FN = text("SELECT * FROM real_queue_claim_as(:key_hash, :project, :now, :cap, :gold_draw)")
_LABEL_AS_FN = text(
    "SELECT * FROM real_queue_label_as(:key_hash, :assignment, :choice, :confidence, :rationale, "
    ":idempotency_key, :fingerprint, :now, :label_id, :created_at)"
)


@dataclass(frozen=True)
class LeaseTaken:
    """real_queue_claim leased a slot: the assignment, and what the annotator is shown."""

    assignment_id: uuid.UUID
    slot_id: uuid.UUID
    pair_id: uuid.UUID
    lease_expires_at: datetime
    prompt: Any
    first_id: uuid.UUID
    first_text: str
    second_id: uuid.UUID
    second_text: str
    instructions: str


@dataclass(frozen=True)
class LeaseCapReached:
    """The annotator holds the most live leases allowed; the soonest ends at ``soonest_expiry``."""

    live_leases: int
    soonest_expiry: datetime


@dataclass(frozen=True)
class NothingClaimed:
    """No slot to hand out: "no_project", or why the queue is empty (a QueueReason)."""

    reason: str


ClaimOutcome = LeaseTaken | LeaseCapReached | NothingClaimed


def _claim_outcome(row: Any) -> ClaimOutcome:
    if row.outcome == "claimed":
        return LeaseTaken(
            row.assignment_id, row.slot_id, row.pair_id, row.lease_expires_at, row.prompt, row.first_id,
            row.first_text, row.second_id, row.second_text, row.instructions or "",
        )  # fmt: skip
    if row.outcome == "lease_cap":
        return LeaseCapReached(row.live_leases, row.soonest_expiry)
    return NothingClaimed(row.outcome)


@dataclass(frozen=True)
class StoredLabel:
    """A label as the API answers it: the choice in screen terms, with the order it was shown in."""

    id: uuid.UUID
    assignment_id: uuid.UUID
    project_id: uuid.UUID
    pair_id: uuid.UUID
    annotator: str
    choice: str
    shown_first_response_id: uuid.UUID
    shown_second_response_id: uuid.UUID
    labeled_at: datetime
    confidence: int | None
    rationale: str | None

    @property
    def winner_response_id(self) -> uuid.UUID | None:
        """The response the annotator chose (None for tie and both_bad)."""
        return outcome.shown_winner(self.choice, self.shown_first_response_id, self.shown_second_response_id)

    @classmethod
    def of(cls, label: Label, shown_second_response_id: uuid.UUID) -> StoredLabel:
        return cls(
            id=label.id,
            assignment_id=label.assignment_id,
            project_id=label.project_id,
            pair_id=label.pair_id,
            annotator=label.annotator,
            choice=label.choice,
            shown_first_response_id=label.shown_first_response_id,
            shown_second_response_id=shown_second_response_id,
            labeled_at=label.labeled_at,
            confidence=label.confidence,
            rationale=label.rationale,
        )


@dataclass(frozen=True)
class LabelRow:
    """A label real_queue_label stored ("created") or found again for a retry ("replayed")."""

    created: bool
    label: StoredLabel


@dataclass(frozen=True)
class LabelRefused:
    """Why real_queue_label stored nothing: "not_found", "lease_expired", "idempotency_key_reused" or
    "already_labeled" (with the choice already stored)."""

    reason: str
    detail: str | None
    choice: str | None


LabelOutcome = LabelRow | LabelRefused


def _label_outcome(row: Any) -> LabelOutcome:
    if row.outcome not in ("created", "replayed"):
        return LabelRefused(row.outcome, row.detail, row.choice)
    stored = StoredLabel(
        row.label_id, row.assignment_id, row.project_id, row.pair_id, row.annotator, row.choice,
        row.shown_first_response_id, row.shown_second_response_id, row.labeled_at, row.confidence,
        row.rationale,
    )  # fmt: skip
    return LabelRow(row.outcome == "created", stored)


@dataclass(frozen=True)
class CallerOutcome:
    """What real_queue_caller found for a key: "ok", or "unknown_key", "revoked_key", "expired_key",
    "forbidden_role", "no_project", "no_assignment"."""

    outcome: str
    key_id: uuid.UUID | None
    name: str | None
    role: str | None


def _caller_outcome(row: Any) -> CallerOutcome:
    """The caller part of an `_as` row (the rest is the work's row when the caller was ok)."""
    return CallerOutcome(row.caller_outcome, row.key_id, row.caller_name, row.caller_role)


def claim_pg(
    session: Session, project_id: uuid.UUID, annotator: str, now: datetime, lease_cap: int, gold_draw: float
) -> ClaimOutcome:
    """The whole claim in one statement: the lease, or why there is none."""
    params = {
        "project": project_id,
        "annotator": annotator,
        "now": now,
        "cap": lease_cap,
        "gold_draw": gold_draw,
    }
    return _claim_outcome(_core(session).execute(_CLAIM_FN, params).one())


def label_pg(session: Session, params: dict[str, Any]) -> LabelOutcome:
    """The whole label in one statement: the label, or why not."""
    return _label_outcome(_core(session).execute(_LABEL_FN, params).one())


def claim_as(conn: Connection, params: dict[str, Any]) -> tuple[CallerOutcome, ClaimOutcome | None]:
    """Resolve the key, check the caller may claim in the project, and claim: one statement (the claim is
    None when the caller was refused)."""
    row = conn.execute(_CLAIM_AS_FN, params).one()
    caller = _caller_outcome(row)
    return caller, _claim_outcome(row) if caller.outcome == "ok" else None


def label_as(conn: Connection, params: dict[str, Any]) -> tuple[CallerOutcome, LabelOutcome | None]:
    """Resolve the key, check the assignment is the caller's, and label it: one statement (the label is
    None when the caller was refused)."""
    row = conn.execute(_LABEL_AS_FN, params).one()
    caller = _caller_outcome(row)
    return caller, _label_outcome(row) if caller.outcome == "ok" else None
