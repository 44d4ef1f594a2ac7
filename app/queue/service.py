"""Claim and label: leases, budget, fencing, idempotent retries."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth.context import Caller
from app.config import get_settings
from app.errors import ActiveLeaseLimit, AlreadyLabeled, LeaseExpired, NotFound
from app.pairs.models import Pair
from app.projects.models import Project
from app.prompts.models import Prompt, Response
from app.queue import repository
from app.queue.models import Assignment, AssignmentStatus, Choice, Label

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


@dataclass
class Claimed:
    assignment: Assignment
    prompt: Prompt
    first: Response
    second: Response


def claim(session: Session, project: Project, annotator: str, now: datetime) -> Claimed | str:
    """Lease the best free slot to the annotator, or say why there is none (a QueueReason)."""
    _check_lease_cap(session, annotator, now)
    budget_open = True
    for _attempt in range(20):
        found = repository.find_claimable_slot(
            session, project.id, annotator, now, released_only=not budget_open
        )
        if found is None:
            break
        slot_id, pair_id, released = found
        # The first claim of a pair releases it and spends its budget; a sibling slot's claim finds it
        # released already (mark_pair_released returns False) and spends nothing.
        if not released and repository.mark_pair_released(session, pair_id, now):
            if not repository.take_budget_for_pair(session, project.id):
                repository.unrelease_pair(session, pair_id)
                budget_open = False  # spent meanwhile: only already-released pairs may still be handed out
                continue
        assignment_id = uuid.uuid4()
        expires_at = now + timedelta(seconds=project.lease_ttl_seconds)
        if not repository.lease_slot(session, slot_id, assignment_id, annotator, now, expires_at):
            continue  # taken between our read and our write; try the next one
        pair = session.get_one(Pair, pair_id)
        a = session.get_one(Response, pair.response_a_id)
        b = session.get_one(Response, pair.response_b_id)
        first, second = (a, b) if _screen_order.random() < 0.5 else (b, a)
        assignment = Assignment(
            id=assignment_id,
            project_id=project.id,
            pair_id=pair_id,
            slot_id=slot_id,
            annotator=annotator,
            shown_first_response_id=first.id,
            shown_second_response_id=second.id,
            status=AssignmentStatus.ACTIVE,
            lease_expires_at=expires_at,
        )
        session.add(assignment)
        session.flush()
        log.info("queue.claimed", extra={"assignment_id": str(assignment_id), "pair_id": str(pair_id)})
        return Claimed(assignment, session.get_one(Prompt, pair.prompt_id), first, second)
    return _why_empty(session, project)


def _check_lease_cap(session: Session, annotator: str, now: datetime) -> None:
    cap = get_settings().max_active_leases_per_annotator
    live = session.scalars(
        select(Assignment.lease_expires_at)
        .where(Assignment.annotator == annotator, Assignment.status == AssignmentStatus.ACTIVE)
        .where(Assignment.lease_expires_at > now)
        .order_by(Assignment.lease_expires_at)
    ).all()
    if len(live) >= cap:
        retry = max(1, int((live[0] - now).total_seconds()) + 1)
        raise ActiveLeaseLimit(
            f"{annotator!r} already holds {len(live)} live leases (the cap is {cap}); label or wait for one",
            headers={"Retry-After": str(retry)},
        )


def _why_empty(session: Session, project: Project) -> str:
    session.refresh(project)
    max_pairs = project.max_pairs
    # Once the budget is closed nothing new is released; only an expiring lease could free work again.
    if max_pairs is not None and project.pairs_released >= max_pairs:
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


def _same_or_conflict(label: Label, choice: Choice) -> Label:
    if label.choice != choice:
        raise AlreadyLabeled(f"this assignment was already labelled {label.choice!r}")
    return label


def label(session: Session, assignment: Assignment, choice: Choice, now: datetime) -> tuple[Label, bool]:
    """Store the assignment's label; (label, created). A retry with the same choice returns the first."""
    existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
    if existing is not None:
        return _same_or_conflict(existing, choice), False
    if not repository.complete_slot(session, assignment.slot_id, assignment.id, now):
        # A concurrent identical submit may have just won the slot; its label is then the answer.
        existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if existing is not None:
            return _same_or_conflict(existing, choice), False
        raise LeaseExpired("the lease ended before the label arrived; claim again")
    project = session.get_one(Project, assignment.project_id)
    winner: uuid.UUID | None = None
    if choice is Choice.A:
        winner = assignment.shown_first_response_id
    elif choice is Choice.B:
        winner = assignment.shown_second_response_id
    new = Label(
        assignment_id=assignment.id,
        project_id=assignment.project_id,
        pair_id=assignment.pair_id,
        annotator=assignment.annotator,
        choice=choice,
        winner_response_id=winner,
        shown_first_response_id=assignment.shown_first_response_id,
        labeled_at=now,
    )
    try:
        with session.begin_nested():
            session.add(new)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(Label).where(Label.assignment_id == assignment.id))
        if existing is None:
            raise
        return _same_or_conflict(existing, choice), False
    assignment.status = AssignmentStatus.LABELED
    repository.count_label_on_pair(session, assignment.pair_id, project.annotations_per_pair)
    session.flush()
    log.info("queue.labeled", extra={"assignment_id": str(assignment.id), "choice": choice.value})
    return new, True
