"""Assignments (one per claim, with a lease) and the labels they produce."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class AssignmentStatus(StrEnum):
    ACTIVE = "active"  # leased (live until lease_expires_at)
    LABELED = "labeled"
    RELEASED = "released"  # given back by the annotator; the pair may come to them again
    SKIPPED = "skipped"  # declined; the pair never comes to this annotator again
    EXPIRED = (
        "expired"  # the lease ran out (recorded by maintenance, for metrics; not needed for correctness)
    )
    WITHDRAWN = "withdrawn"  # labelled, then the label was undone


class Choice(StrEnum):
    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Assignment(TimestampMixin, Base):
    __tablename__ = "assignment"
    __table_args__ = (
        Index("ix_assignment_pair_annotator", "pair_id", "annotator"),
        # Live leases per annotator (the lease cap on every claim).
        Index(
            "ix_assignment_active_annotator",
            "annotator",
            "lease_expires_at",
            postgresql_where=text("status = 'active'"),
            sqlite_where=text("status = 'active'"),
        ),
    )

    # A random UUID: it names a lease, and a lease is not to be guessed.
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    pair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair.id", ondelete="CASCADE"), nullable=False)
    slot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair_slot.id", ondelete="CASCADE"), nullable=False)
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    # The response shown in screen position "a" (positions are randomised per assignment).
    shown_first_response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("response.id"), nullable=False)
    shown_second_response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("response.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=AssignmentStatus.ACTIVE)
    lease_expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    renewals: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class Label(TimestampMixin, Base):
    __tablename__ = "label"
    __table_args__ = (
        Index("ix_label_project", "project_id"),
        Index("ix_label_pair", "pair_id"),
        # A client's Idempotency-Key names one label of that annotator, whatever the assignment.
        UniqueConstraint("annotator", "idempotency_key"),
    )

    # Time-ordered, so "the annotator's last label" (undo) follows submission order even within a microsecond.
    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    # Unique: one label per assignment, which makes a retried submit find the first one.
    assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    pair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair.id", ondelete="CASCADE"), nullable=False)
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    # In screen terms ("a": the response shown first won); app/labels/outcome.pair_side gives the pair's side.
    choice: Mapped[str] = mapped_column(String(16), nullable=False)
    shown_first_response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("response.id"), nullable=False)
    labeled_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    confidence: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rationale: Mapped[str | None] = mapped_column(Text, nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # sha256 of the request (assignment, choice, confidence, rationale): a retry must match it exactly.
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
