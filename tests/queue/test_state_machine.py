"""The queue as a state machine: claim, renew, release, skip, label, undo and expiry under a controlled clock.

Hypothesis drives the service layer directly, one unit of work per step, against a model of what each call
must do; after every step the database is checked against the queue's invariants (design.md, "Queue").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.context import BOOTSTRAP_ADMIN
from app.db.base import utcnow
from app.errors import (
    ActiveLeaseLimit,
    AlreadyLabeled,
    DomainError,
    LeaseExpired,
    NotFound,
    RenewalLimit,
    UndoRefused,
)
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.queue import repository, service
from app.queue.models import Assignment, AssignmentStatus, Choice, Label
from app.queue.schemas import LabelRequest
from tests.conftest import truncate_all
from tests.factories import make_pairs, make_project

ANNOTATORS = ("ann-0", "ann-1", "ann-2")
TTL = 60
LEASE_CAP = 3  # low enough that the active-lease cap is reached in a few claims
RENEWAL_CAP = 1  # so that the cap is reached often
UNDO_WINDOW = 60
EPOCH = utcnow().replace(microsecond=0) + timedelta(days=1)

machine_settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class ModelLabel:
    id: uuid.UUID
    choice: Choice
    at: datetime
    lease_expires_at: datetime  # the lease's end when the label was accepted (invariant 4)


@dataclass
class ModelAssignment:
    id: uuid.UUID
    annotator: str
    pair_id: uuid.UUID
    slot_id: uuid.UUID
    status: str
    expires: datetime
    renewals: int = 0
    label: ModelLabel | None = None

    def live(self, now: datetime) -> bool:
        return self.status == AssignmentStatus.ACTIVE and self.expires > now


class QueueMachine(RuleBasedStateMachine):
    """Bound to a Database by a subclass (see the test at the bottom)."""

    database: Any = None
    assignments = Bundle("assignments")
    labelled = Bundle("labelled")  # assignments that got a label (it may have been withdrawn since)

    def __init__(self) -> None:
        super().__init__()
        self.now = EPOCH
        self.project_id: uuid.UUID | None = None
        self.budget: int | None = None
        self.k = 1
        self.slots: list[tuple[uuid.UUID, uuid.UUID]] = []  # (slot id, pair id), in the claim's id order
        self.released: set[uuid.UUID] = set()
        self.model: dict[uuid.UUID, ModelAssignment] = {}

    # --- plumbing ---------------------------------------------------------------------------------------

    def _unit(self, work: Callable[[Session], Any]) -> tuple[Any, DomainError | None]:
        """One unit of work; a domain error rolls it back and is returned, not raised."""
        try:
            with self.database.session() as session:
                return work(session), None
        except DomainError as error:
            return None, error

    def _expect_error(self, error: DomainError | None, kind: type[DomainError], what: str) -> None:
        assert isinstance(error, kind), f"{what}: expected {kind.__name__}, got {error!r}"
        event(f"{what.split(':')[0]} -> {kind.__name__}")

    def _expect_ok(self, error: DomainError | None, what: str) -> None:
        assert error is None, f"{what}: expected success, got {error!r}"
        event(f"{what.split(':')[0]} -> ok")

    @property
    def max_pairs(self) -> int | None:
        return None if self.budget is None else self.budget // self.k

    def _pair_blocked_for(self, pair_id: uuid.UUID, annotator: str) -> bool:
        return any(
            a.pair_id == pair_id
            and a.annotator == annotator
            and (a.status in (AssignmentStatus.LABELED, AssignmentStatus.SKIPPED) or a.live(self.now))
            for a in self.model.values()
        )

    def _slot_free(self, slot_id: uuid.UUID) -> bool:
        done = any(a.slot_id == slot_id and a.status == AssignmentStatus.LABELED for a in self.model.values())
        leased = any(a.slot_id == slot_id and a.live(self.now) for a in self.model.values())
        return not done and not leased

    def _expected_slot(self, annotator: str) -> tuple[uuid.UUID, uuid.UUID] | None:
        """The slot the claim must lease: released pairs first, then id order (all priorities are equal)."""
        open_slots = [
            (slot_id, pair_id)
            for slot_id, pair_id in self.slots
            if self._slot_free(slot_id) and not self._pair_blocked_for(pair_id, annotator)
        ]
        released = [s for s in open_slots if s[1] in self.released]
        if released:
            return released[0]
        if open_slots and (self.max_pairs is None or len(self.released) < self.max_pairs):
            return open_slots[0]
        return None

    def _latest_label(self, annotator: str) -> ModelLabel | None:
        """The label undo may withdraw: newest labeled_at, ties broken by id (the service's order)."""
        labels = [a.label for a in self.model.values() if a.annotator == annotator and a.label is not None]
        return max(labels, key=lambda lab: (lab.at, lab.id), default=None)

    # --- set-up -----------------------------------------------------------------------------------------

    @initialize(
        budget=st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
        k=st.integers(min_value=1, max_value=3),
        n_pairs=st.integers(min_value=2, max_value=6),
    )
    def setup(self, budget: int | None, k: int, n_pairs: int) -> None:
        truncate_all(self.database)
        with self.database.session() as session:
            project = make_project(session, budget=budget, annotations_per_pair=k, lease_ttl_seconds=TTL)
            make_pairs(session, project, n_pairs)
            self.project_id = project.id
            self.slots = sorted(
                (row.id, row.pair_id)
                for row in session.execute(
                    select(PairSlot.id, PairSlot.pair_id).where(PairSlot.project_id == project.id)
                )
            )
        self.budget, self.k = budget, k

    # --- rules --------------------------------------------------------------------------------------------

    # Mostly short steps (a lease lives across several calls), sometimes long ones (leases and windows end).
    @rule(seconds=st.one_of(st.integers(min_value=1, max_value=15), st.integers(min_value=1, max_value=200)))
    def advance(self, seconds: int) -> None:
        """The only way time moves; past the TTL this is the "expire" rule."""
        self.now += timedelta(seconds=seconds)

    @rule(target=assignments, annotator=st.sampled_from(ANNOTATORS))
    def claim(self, annotator: str) -> Any:
        live = sum(1 for a in self.model.values() if a.annotator == annotator and a.live(self.now))
        expected = self._expected_slot(annotator)

        def work(session: Session) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime] | str:
            project = session.get_one(Project, self.project_id)
            result = service.claim(session, project, annotator, self.now)
            if isinstance(result, str):
                return result
            a = result.assignment
            return a.id, a.slot_id, a.pair_id, a.lease_expires_at

        result, error = self._unit(work)
        if live >= LEASE_CAP:
            self._expect_error(error, ActiveLeaseLimit, f"claim at the lease cap: {annotator} holds {live}")
            return multiple()
        self._expect_ok(error, f"claim: by {annotator}")
        if expected is None:
            assert isinstance(result, str), f"claim by {annotator}: expected no work, got {result!r}"
            spent = self.max_pairs is not None and len(self.released) >= self.max_pairs
            want = service.QueueReason.BUDGET_SPENT if spent else service.QueueReason.EMPTY
            assert result == want, f"claim by {annotator}: reason {result!r}, expected {want!r}"
            event(f"claim -> nothing ({result})")
            return multiple()
        assert not isinstance(result, str), f"claim by {annotator}: expected slot {expected}, got {result!r}"
        assignment_id, slot_id, pair_id, expires = result
        assert (slot_id, pair_id) == expected, f"claim by {annotator} leased {slot_id}, expected {expected}"
        assert expires == self.now + timedelta(seconds=TTL)
        event("claim -> a released pair" if pair_id in self.released else "claim -> releases a new pair")
        self.released.add(pair_id)
        self.model[assignment_id] = ModelAssignment(
            assignment_id, annotator, pair_id, slot_id, AssignmentStatus.ACTIVE, expires
        )
        return assignment_id

    @rule(assignment_id=assignments)
    def renew(self, assignment_id: uuid.UUID) -> None:
        m = self.model[assignment_id]
        result, error = self._unit(
            lambda s: service.renew(s, s.get_one(Assignment, assignment_id), self.now).lease_expires_at
        )
        if not m.live(self.now):
            self._expect_error(
                error, LeaseExpired, f"renew of a lease that is not live: {m.status}, ending {m.expires}"
            )
        elif m.renewals >= RENEWAL_CAP:
            self._expect_error(error, RenewalLimit, "renew past the cap")
        else:
            self._expect_ok(error, "renew of a live lease")
            assert result == self.now + timedelta(seconds=TTL)
            m.expires, m.renewals = result, m.renewals + 1

    def _give_up(self, assignment_id: uuid.UUID, skip: bool) -> None:
        m = self.model[assignment_id]
        wanted = AssignmentStatus.SKIPPED if skip else AssignmentStatus.RELEASED
        _, error = self._unit(
            lambda s: service.give_up(s, s.get_one(Assignment, assignment_id), self.now, skip=skip)
        )
        if m.status == wanted:
            self._expect_ok(error, f"repeated {wanted}")  # idempotent
        elif m.live(self.now):
            self._expect_ok(error, f"{wanted} of a live lease")
            m.status, m.expires = wanted, self.now
        else:
            self._expect_error(
                error, LeaseExpired, f"{wanted} of a lease that is not live: {m.status}, ending {m.expires}"
            )

    @rule(assignment_id=assignments)
    def release(self, assignment_id: uuid.UUID) -> None:
        self._give_up(assignment_id, skip=False)

    @rule(assignment_id=assignments)
    def skip(self, assignment_id: uuid.UUID) -> None:
        self._give_up(assignment_id, skip=True)

    @rule(target=labelled, assignment_id=assignments, choice=st.sampled_from(list(Choice)))
    def label(self, assignment_id: uuid.UUID, choice: Choice) -> Any:
        m = self.model[assignment_id]

        def work(session: Session) -> tuple[uuid.UUID, bool, datetime]:
            stored, created = service.label(
                session, session.get_one(Assignment, assignment_id), LabelRequest(choice=choice), self.now
            )
            return stored.id, created, stored.labeled_at

        result, error = self._unit(work)
        if m.label is not None:
            if m.label.choice == choice:
                self._expect_ok(error, "identical retry of a label")
                assert result == (m.label.id, False, m.label.at), "a retry must return the first label"
            else:
                self._expect_error(error, AlreadyLabeled, "a different choice on a labelled assignment")
        elif m.live(self.now):
            self._expect_ok(error, f"label on a live lease: ending {m.expires}")
            label_id, created, at = result
            assert created
            assert at == self.now
            m.label = ModelLabel(label_id, choice, at, m.expires)
            m.status = AssignmentStatus.LABELED
            return assignment_id
        else:
            self._expect_error(
                error, LeaseExpired, f"label on a lease that is not live: {m.status}, ending {m.expires}"
            )
        return multiple()

    @rule(assignment_id=labelled)
    def undo(self, assignment_id: uuid.UUID) -> None:
        m = self.model[assignment_id]
        latest = self._latest_label(m.annotator)
        _, error = self._unit(
            lambda s: service.undo(s, BOOTSTRAP_ADMIN, s.get_one(Assignment, assignment_id), self.now)
        )
        if m.label is None:
            self._expect_error(error, NotFound, "undo without a label")
        elif latest is not m.label:
            self._expect_error(error, UndoRefused, "undo of a label that is not the annotator's latest")
        elif (self.now - m.label.at).total_seconds() > UNDO_WINDOW:
            self._expect_error(error, UndoRefused, "undo past the window")
        else:
            self._expect_ok(error, "undo of the latest label within the window")
            m.label, m.status = None, AssignmentStatus.WITHDRAWN

    @precondition(
        lambda self: any(
            a.status == AssignmentStatus.ACTIVE and a.expires <= self.now for a in self.model.values()
        )
    )
    @rule()
    def reconcile(self) -> None:
        """Maintenance records ended leases as expired (claims must not depend on it)."""
        count, error = self._unit(lambda s: repository.mark_expired(s, self.now))
        self._expect_ok(error, "mark_expired")
        ended = [
            a for a in self.model.values() if a.status == AssignmentStatus.ACTIVE and a.expires <= self.now
        ]
        assert count == len(ended)
        for a in ended:
            a.status = AssignmentStatus.EXPIRED

    # --- invariants -------------------------------------------------------------------------------------

    @invariant()
    @precondition(lambda self: self.project_id is not None)
    def database_agrees(self) -> None:
        now = self.now
        with self.database.session() as session:
            released_count = repository.pairs_released(session, self.project_id)
            pairs = {p.id: p for p in session.scalars(select(Pair))}
            slots = {s.id: s for s in session.scalars(select(PairSlot))}
            assignments = {a.id: a for a in session.scalars(select(Assignment))}
            labels = list(session.scalars(select(Label)))

        # The model and the rows agree (status, lease, renewals, labels).
        assert set(assignments) == set(self.model)
        for a in assignments.values():
            m = self.model[a.id]
            assert (a.status, a.lease_expires_at, a.renewals) == (m.status, m.expires, m.renewals), a.id
            assert (a.annotator, a.slot_id, a.pair_id) == (m.annotator, m.slot_id, m.pair_id)
        assert {lab.assignment_id: lab.id for lab in labels} == {
            m.id: m.label.id for m in self.model.values() if m.label is not None
        }

        # 1. At most one live lease per slot, and the slot's lease columns name it.
        live_by_slot: dict[uuid.UUID, list[Assignment]] = {}
        for a in assignments.values():
            if a.status == AssignmentStatus.ACTIVE and a.lease_expires_at > now:
                live_by_slot.setdefault(a.slot_id, []).append(a)
        labelled_slots = {assignments[lab.assignment_id].slot_id for lab in labels}
        for slot in slots.values():
            holders = live_by_slot.get(slot.id, [])
            assert len(holders) <= 1, f"slot {slot.id} has {len(holders)} live leases"
            if holders:
                (holder,) = holders
                assert not slot.done
                assert (slot.lease_assignment_id, slot.lease_owner, slot.lease_expires_at) == (
                    holder.id,
                    holder.annotator,
                    holder.lease_expires_at,
                ), f"slot {slot.id} disagrees with its live holder {holder.id}"
            else:
                assert slot.lease_expires_at is None or slot.lease_expires_at <= now, (
                    f"slot {slot.id} looks leased until {slot.lease_expires_at} but no assignment holds it"
                )
            assert slot.done == (slot.id in labelled_slots), f"slot {slot.id} done={slot.done}"

        # 2. At most k labels per pair; the counter and the status follow the label rows.
        per_pair: dict[uuid.UUID, int] = {}
        for lab in labels:
            per_pair[lab.pair_id] = per_pair.get(lab.pair_id, 0) + 1
        for pair in pairs.values():
            n = per_pair.get(pair.id, 0)
            assert n <= self.k, f"pair {pair.id} has {n} labels, k={self.k}"
            assert pair.labels_count == n, f"pair {pair.id}: labels_count {pair.labels_count}, rows {n}"
            assert (pair.status == PairStatus.DONE) == (n == self.k), f"pair {pair.id} {pair.status} {n}"
            assert (pair.released_at is None) == (pair.status == PairStatus.QUEUED)

        # 3. The budget is never exceeded.
        released = {p.id for p in pairs.values() if p.released_at is not None}
        assert released == self.released
        assert released_count == len(released)
        if self.budget is not None:
            assert len(labels) <= self.budget
            assert len(released) <= self.budget // self.k

        # 4. Every label was accepted while its lease was live.
        for lab in labels:
            m = self.model[lab.assignment_id]
            assert m.label is not None
            assert lab.labeled_at == m.label.at < m.label.lease_expires_at
            assert lab.annotator == m.annotator
            assert lab.pair_id == m.pair_id

        # 5. One annotator never labels or holds one pair twice.
        labelled = [(lab.pair_id, lab.annotator) for lab in labels]
        assert len(labelled) == len(set(labelled)), "an annotator labelled a pair twice"
        live_holds = [(a.pair_id, a.annotator) for holders in live_by_slot.values() for a in holders]
        assert len(live_holds) == len(set(live_holds)), "an annotator holds two live leases on one pair"
        assert not set(live_holds) & set(labelled), "an annotator holds a pair they already labelled"


def run_machine(database: Any, override_settings: Any) -> None:
    override_settings(
        max_active_leases_per_annotator=LEASE_CAP,
        max_lease_renewals=RENEWAL_CAP,
        undo_window_seconds=UNDO_WINDOW,
    )

    class BoundQueueMachine(QueueMachine):
        pass

    BoundQueueMachine.database = database
    run_state_machine_as_test(BoundQueueMachine, settings=machine_settings)


def test_queue_state_machine(db: Any, override_settings: Any) -> None:
    """Postgres: every claim and label is the SQL function (real_queue_claim / real_queue_label)."""
    run_machine(db, override_settings)


def test_queue_state_machine_on_the_sqlite_default(sqlite_app: Any, override_settings: Any) -> None:
    """SQLite: the same steps as statements from app/queue/service.py."""
    run_machine(sqlite_app, override_settings)
