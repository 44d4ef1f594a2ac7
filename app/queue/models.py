"""Assignments (one per claim, with a lease) and the labels they produce."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.types import UTCDateTime


class AssignmentStatus(StrEnum):
    ACTIVE = "active"
    LABELED = "labeled"


class Choice(StrEnum):
    A = "a"
    B = "b"
    TIE = "tie"
    BOTH_BAD = "both_bad"


class Assignment(TimestampMixin, Base):
    __tablename__ = "assignment"
    __table_args__ = (Index("ix_assignment_pair_annotator", "pair_id", "annotator"),)

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


class Label(TimestampMixin, Base):
    __tablename__ = "label"
    __table_args__ = (Index("ix_label_project", "project_id"), Index("ix_label_pair", "pair_id"))

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid.uuid4)
    # Unique: one label per assignment, which makes a retried submit find the first one.
    assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assignment.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    pair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair.id", ondelete="CASCADE"), nullable=False)
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    choice: Mapped[str] = mapped_column(String(16), nullable=False)
    winner_response_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("response.id"), nullable=True)
    shown_first_response_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("response.id"), nullable=False)
    labeled_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
