"""Claim and label: leases, budget, fencing, idempotent retries."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.audit import service as audit
from app.auth import service as auth
from app.auth.context import Caller
from app.auth.models import Role
from app.config import get_settings
from app.db.base import utcnow
from app.db.ids import uuid7
from app.errors import (
    ActiveLeaseLimit,
    AlreadyLabeled,
    IdempotencyKeyReused,
    InvalidInput,
    LeaseExpired,
    NotFound,
    RenewalLimit,
    UndoRefused,
)
from app.projects import service as projects
from app.projects.models import Project
from app.queue import budget, repository
from app.queue.models import Assignment, AssignmentStatus, Label
from app.queue.repository import (
    ClaimOutcome,
    LabelOutcome,
    LabelRefused,
    LeaseCapReached,
    LeaseTaken,
    NothingClaimed,
    StoredLabel,
)
from app.queue.schemas import LabelRequest

log = logging.getLogger(__name__)

_screen_order = random.SystemRandom()


class QueueReason:
    EMPTY = "empty"
    BUDGET_SPENT = "budget_spent"
    WAITING_FOR_EMBEDDINGS = "waiting_for_embeddings"


RETRY_AFTER_SECONDS = {
    QueueReason.EMPTY: 30,
    QueueReason.BUDGET_SPENT: 300,
    QueueReason.WAITING_FOR_EMBEDDINGS: 5,
}


@dataclass(frozen=True)
class Lease:
    """The assignment a claim created (the claim path inserts it without an ORM object)."""

    id: uuid.UUID
    slot_id: uuid.UUID
    pair_id: uuid.UUID
    lease_expires_at: datetime


@dataclass(frozen=True)
class Shown:
    id: uuid.UUID
    text: str


@dataclass(frozen=True)
class Claimed:
    assignment: Lease
    prompt: Any
    first: Shown
    second: Shown


def claim(session: Session, project: Project, annotator: str, now: datetime) -> Claimed | str:
    """Lease the best free slot to the annotator, or say why there is none (a QueueReason).

    Finding and leasing the slot is one statement (SKIP LOCKED on Postgres). The first claim of a pair
    releases it (compare-and-set on pair.released_at) and spends its budget on the project's counter row,
    written last, just before COMMIT, so concurrent claims hold that row lock for the shortest time. If the
    budget refuses, the claim is undone in place (same transaction) and only already-released pairs are
    considered. A share (project.gold_rate) of claims hands out a gold pair instead, outside the budget.
    On Postgres all of it is the SQL function real_queue_claim (one round trip); on SQLite the same steps
    run from here.
    """
    cap = get_settings().max_active_leases_per_annotator
    if repository.is_postgres(session):
        found = repository.claim_pg(session, project.id, annotator, now, cap, gold_draw())
        return claimed_or_reason(found, annotator, cap, now)
    _check_lease_cap(session, annotator, cap, now)
    if project.gold_rate > 0 and gold_draw() < project.gold_rate:
        gold = _claim_gold(session, project, annotator, now)
        if gold is not None:
            return gold
    # A hint from the counters as read; take_budget_for_pair below is the authority.
    budget_open = budget.can_release_pair(
        project.budget, project.annotations_per_pair, repository.spent(session, project.id)
    )
    expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
    for _attempt in range(20):
        assignment_id = uuid.uuid4()
        found_slot = repository.claim_slot(
            session, project.id, annotator, assignment_id, now, expires_at, released_only=not budget_open
        )
        if found_slot is None:
            break
        slot_id, pair_id, was_released = found_slot
        # A sibling slot's claim finds the pair released already (mark_pair_released is False): no budget.
        releasing = not was_released and repository.mark_pair_released(session, pair_id, now)
        claimed = _assign(session, project, assignment_id, pair_id, slot_id, annotator, now, expires_at)
        # The budget is the project's counter row, locked by this UPDATE until COMMIT: the last statement, so
        # concurrent first claims queue on it for one round trip only.
        if releasing and not repository.take_budget_for_pair(session, project.id):
            repository.unclaim_slot(session, slot_id, pair_id, assignment_id)
            budget_open = False  # spent meanwhile: only already-released pairs may still be handed out
            continue
        if releasing and project.annotations_per_pair > 1:
            # Only once the budget is spent: a flagged sibling is handed out as released, without budget.
            repository.mark_siblings_released(session, pair_id)
        log.info("queue.claimed", extra={"assignment_id": str(assignment_id), "pair_id": str(pair_id)})
        return claimed
    return _why_empty(session, project)


def on_behalf_of(session: Session, project: Project, name: str) -> str:
    """Whom an admin's claim for `annotator` leases to: an existing annotator principal that may work on
    the project (the rule its own key meets: app/projects/service.can_see); else 422 naming `annotator`.
    An admin cannot invent annotators, whose labels would count as independent judgments."""
    annotator = auth.principal_caller(session, name)
    if annotator is None:
        raise InvalidInput(f"no principal {name!r}; create the annotator's key first", field="annotator")
    if annotator.role is not Role.ANNOTATOR:
        raise InvalidInput(f"{name!r} is a {annotator.role.value}, not an annotator", field="annotator")
    if not projects.can_see(annotator, project):
        raise InvalidInput(f"annotator {name!r} may not work on project {project.id}", field="annotator")
    return name


def gold_draw() -> float:
    """The draw a claim compares with project.gold_rate (a gold pair when below it)."""
    return _screen_order.random()


def claimed_or_reason(found: ClaimOutcome, annotator: str, cap: int, now: datetime) -> Claimed | str:
    """A real_queue_claim outcome as the claim's answer: the lease, or why there is none (429 at the cap)."""
    if isinstance(found, LeaseCapReached):
        _refuse_over_cap(annotator, found.live_leases, cap, found.soonest_expiry, now)
    if isinstance(found, NothingClaimed):
        if found.reason == "no_project":  # deleted since the caller's check
            raise NotFound("no such project")
        return found.reason
    assert isinstance(found, LeaseTaken)
    log.info(
        "queue.claimed", extra={"assignment_id": str(found.assignment_id), "pair_id": str(found.pair_id)}
    )
    return Claimed(
        Lease(found.assignment_id, found.slot_id, found.pair_id, found.lease_expires_at),
        found.prompt,
        Shown(found.first_id, found.first_text),
        Shown(found.second_id, found.second_text),
    )


def _assign(
    session: Session,
    project: Project,
    assignment_id: uuid.UUID,
    pair_id: uuid.UUID,
    slot_id: uuid.UUID,
    annotator: str,
    now: datetime,
    expires_at: datetime,
) -> Claimed:
    shown = repository.shown_pair(session, pair_id)
    a = Shown(shown.response_a_id, shown.response_a_text)
    b = Shown(shown.response_b_id, shown.response_b_text)
    first, second = (a, b) if _screen_order.random() < 0.5 else (b, a)
    repository.insert_assignment(
        session,
        id=assignment_id,
        project_id=project.id,
        pair_id=pair_id,
        slot_id=slot_id,
        annotator=annotator,
        shown_first_response_id=first.id,
        shown_second_response_id=second.id,
        status=AssignmentStatus.ACTIVE,
        lease_expires_at=expires_at,
        renewals=0,
        created_at=now,  # the claim time on the injected clock (seconds-per-label stats read it)
    )
    return Claimed(Lease(assignment_id, slot_id, pair_id, expires_at), shown.prompt, first, second)


def _claim_gold(session: Session, project: Project, annotator: str, now: datetime) -> Claimed | None:
    """A gold pair this annotator has not been given yet, on a slot of its own (gold is never budgeted)."""
    pair_id = repository.next_gold_pair(session, project.id, annotator)
    if pair_id is None:
        return None
    assignment_id = uuid.uuid4()
    expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
    try:
        with session.begin_nested():
            slot_id = repository.add_leased_slot(
                session, project.id, pair_id, assignment_id, annotator, expires_at
            )
            return _assign(session, project, assignment_id, pair_id, slot_id, annotator, now, expires_at)
    except IntegrityError:
        return None  # a concurrent claim of the same annotator took that slot number; serve a normal pair


def _check_lease_cap(session: Session, annotator: str, cap: int, now: datetime) -> None:
    live = repository.live_lease_expiries(session, annotator, now)
    if len(live) >= cap:
        _refuse_over_cap(annotator, len(live), cap, live[0], now)


def _refuse_over_cap(annotator: str, live: int, cap: int, soonest: datetime, now: datetime) -> None:
    retry = max(1, int((soonest - now).total_seconds()) + 1)
    raise ActiveLeaseLimit(
        f"{annotator!r} already holds {live} live leases (the cap is {cap}); label or wait for one",
        headers={"Retry-After": str(retry)},
    )


def _why_empty(session: Session, project: Project) -> str:
    # Once the budget is closed nothing new is released; only an expiring lease could free work again.
    if not budget.can_release_pair(
        project.budget, project.annotations_per_pair, repository.spent(session, project.id)
    ):
        return QueueReason.BUDGET_SPENT
    if repository.has_pending_prompts(session, project.id):
        return QueueReason.WAITING_FOR_EMBEDDINGS
    return QueueReason.EMPTY


def get_assignment(session: Session, caller: Caller, assignment_id: uuid.UUID) -> Assignment:
    """The caller's own assignment (any, for admins) in a project it may see; 404 otherwise."""
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}")
    if not caller.is_admin and (
        assignment.annotator != caller.name or assignment.project_id not in caller.projects
    ):
        raise NotFound(f"no assignment {assignment_id}")
    return assignment


def request_fingerprint(assignment_id: uuid.UUID, body: LabelRequest) -> str:
    """What a retry must repeat exactly to get the first result back."""
    canonical = json.dumps({"assignment": str(assignment_id), **body.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _same_or_conflict(session: Session, label: Label, fingerprint: str) -> StoredLabel:
    if label.request_sha256 != fingerprint:
        raise AlreadyLabeled(f"this assignment was already labelled {label.choice!r}")
    return _stored(session, label)


def _stored(session: Session, label: Label) -> StoredLabel:
    assignment = session.get_one(Assignment, label.assignment_id)
    return StoredLabel.of(label, assignment.shown_second_response_id)


def _by_key(session: Session, annotator: str, key: str, fingerprint: str) -> StoredLabel | None:
    prior = session.scalar(select(Label).where(Label.annotator == annotator, Label.idempotency_key == key))
    if prior is None:
        return None
    if prior.request_sha256 != fingerprint:
        raise IdempotencyKeyReused("send a new Idempotency-Key for a different label")
    return _stored(session, prior)


def label(
    session: Session,
    assignment: Assignment,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None = None,
) -> tuple[StoredLabel, bool]:
    """Store the assignment's label; (label, created). A retry of the same request returns the first.

    On Postgres the whole label is the SQL function real_queue_label (one round trip); on SQLite the same
    steps run from here.
    """
    fingerprint = request_fingerprint(assignment.id, body)
    if repository.is_postgres(session):
        found = repository.label_pg(
            session, label_params(assignment.id, body, now, idempotency_key, fingerprint)
        )
        stored, created = label_or_refusal(found, assignment.id)
        if created:  # written by the function; mirrored on the loaded object without another UPDATE
            set_committed_value(assignment, "status", AssignmentStatus.LABELED)
            set_committed_value(assignment, "ended_at", now)
        return stored, created
    if idempotency_key and (prior := _by_key(session, assignment.annotator, idempotency_key, fingerprint)):
        return prior, False
    if assignment.status != AssignmentStatus.ACTIVE:
        # Labelled already (a retry, or another body: 409), or not live.
        existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if existing is not None:
            return _same_or_conflict(session, existing, fingerprint), False
    _live(assignment, now)
    if not repository.complete_slot(session, assignment.slot_id, assignment.id, now):
        # A concurrent identical submit may have just won the slot; its label is then the answer.
        existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if existing is not None:
            return _same_or_conflict(session, existing, fingerprint), False
        raise LeaseExpired("the lease ended before the label arrived; claim again")
    values = {
        "id": uuid7(),
        "assignment_id": assignment.id,
        "project_id": assignment.project_id,
        "pair_id": assignment.pair_id,
        "annotator": assignment.annotator,
        "choice": body.choice.value,
        "shown_first_response_id": assignment.shown_first_response_id,
        "labeled_at": now,
        "confidence": body.confidence,
        "rationale": body.rationale,
        "idempotency_key": idempotency_key,
        "request_sha256": fingerprint,
        "created_at": utcnow(),
    }
    if idempotency_key is None:
        # complete_slot won the slot for this assignment, so no other insert for it can race this one.
        repository.insert_label(session, values)
    else:
        try:
            with session.begin_nested():  # the key may name another assignment's label (409 below)
                repository.insert_label(session, values)
        except IntegrityError:
            if prior := _by_key(session, assignment.annotator, idempotency_key, fingerprint):
                return prior, False
            raise
    # Written by insert_label; mirrored on the loaded object without another UPDATE.
    set_committed_value(assignment, "status", AssignmentStatus.LABELED)
    set_committed_value(assignment, "ended_at", now)
    repository.count_label_on_pair(session, assignment.pair_id)
    log.info("queue.labeled", extra={"assignment_id": str(assignment.id), "choice": body.choice.value})
    return StoredLabel.of(Label(**values), assignment.shown_second_response_id), True


def label_params(
    assignment_id: uuid.UUID, body: LabelRequest, now: datetime, idempotency_key: str | None, fingerprint: str
) -> dict[str, Any]:
    """The bind parameters of real_queue_label (and real_queue_label_as, with the key's hash added)."""
    return {
        "assignment": assignment_id,
        "choice": body.choice.value,
        "confidence": body.confidence,
        "rationale": body.rationale,
        "idempotency_key": idempotency_key,
        "fingerprint": fingerprint,
        "now": now,
        "label_id": uuid7(),
        "created_at": utcnow(),
    }


def label_or_refusal(found: LabelOutcome, assignment_id: uuid.UUID) -> tuple[StoredLabel, bool]:
    """A real_queue_label outcome as the label's answer: (label, created), or the refusal raised."""
    if isinstance(found, LabelRefused):
        if found.reason == "not_found":
            raise NotFound(f"no assignment {assignment_id}")
        if found.reason == "lease_expired":
            raise LeaseExpired(found.detail or "the lease has expired; claim again")
        if found.reason == "idempotency_key_reused":
            raise IdempotencyKeyReused("send a new Idempotency-Key for a different label")
        raise AlreadyLabeled(f"this assignment was already labelled {found.choice!r}")
    if found.created:
        log.info(
            "queue.labeled",
            extra={"assignment_id": str(found.label.assignment_id), "choice": found.label.choice},
        )
    return found.label, found.created


def _live(assignment: Assignment, now: datetime) -> None:
    if assignment.status != AssignmentStatus.ACTIVE or assignment.lease_expires_at <= now:
        if assignment.status in (AssignmentStatus.ACTIVE, AssignmentStatus.EXPIRED):
            raise LeaseExpired("the lease has expired; claim again")
        raise LeaseExpired(f"this assignment is {assignment.status}, not live")


def renew(session: Session, assignment: Assignment, now: datetime) -> Assignment:
    """Extend a live lease by the project's TTL, at most max_lease_renewals times."""
    _live(assignment, now)
    limit = get_settings().max_lease_renewals
    if assignment.renewals >= limit:
        raise RenewalLimit(f"renewed {assignment.renewals} times already (the cap is {limit})")
    project = session.get_one(Project, assignment.project_id)
    expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
    if not repository.extend_lease(session, assignment.slot_id, assignment.id, now, expires_at):
        raise LeaseExpired("the lease has expired; claim again")
    assignment.lease_expires_at = expires_at
    assignment.renewals += 1
    session.flush()
    return assignment


def give_up(
    session: Session, assignment: Assignment, now: datetime, *, skip: bool, reason: str | None = None
) -> Assignment:
    """Release (the pair may come back to this annotator) or skip (it never does); idempotent."""
    wanted = AssignmentStatus.SKIPPED if skip else AssignmentStatus.RELEASED
    if assignment.status == wanted:
        return assignment
    _live(assignment, now)
    if not repository.free_slot(session, assignment.slot_id, assignment.id, now):
        raise LeaseExpired("the lease has expired; claim again")
    assignment.status = wanted
    assignment.ended_at = now
    assignment.skip_reason = reason if skip else None
    assignment.lease_expires_at = now
    session.flush()
    return assignment


def undo(session: Session, caller: Caller, assignment: Assignment, now: datetime) -> None:
    """Withdraw the annotator's last label within the undo window: the budget and the slot come back."""
    existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
    if existing is None:
        raise NotFound(f"assignment {assignment.id} has no label")
    window = get_settings().undo_window_seconds
    latest = session.scalar(
        select(Label.id)
        .where(Label.annotator == assignment.annotator, Label.project_id == assignment.project_id)
        .order_by(Label.labeled_at.desc(), Label.id.desc())
        .limit(1)
    )
    if latest != existing.id:
        raise UndoRefused("only the most recent label can be withdrawn")
    if (now - existing.labeled_at).total_seconds() > window:
        raise UndoRefused(f"the undo window of {window} s has passed")
    session.delete(existing)
    repository.reopen_slot(session, assignment.slot_id, assignment.pair_id)
    assignment.status = AssignmentStatus.WITHDRAWN
    assignment.ended_at = now
    audit.record(
        session,
        caller,
        "label.withdrawn",
        "label",
        existing.id,
        {"assignment_id": str(assignment.id), "pair_id": str(assignment.pair_id), "choice": existing.choice},
    )
    session.flush()
