"""Chosen pairs and their annotation slots (one slot per wanted label)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class PairStatus(StrEnum):
    QUEUED = "queued"  # chosen, not yet handed out (not counted against the budget)
    RELEASED = "released"  # handed out at least once; counted against the budget
    DONE = "done"  # has annotations_per_pair labels
    # Never handed out, and both responses have near-duplicates among labelled pairs' responses (only with
    # project.skip_redundant_pairs; app/neighbors/redundancy.py): its slots are done, so no claim sees it.
    REDUNDANT = "redundant"


class Pair(TimestampMixin, Base):
    __tablename__ = "pair"
    __table_args__ = (
        UniqueConstraint("prompt_id", "response_a_id", "response_b_id"),
        CheckConstraint("response_a_id < response_b_id", name="ordered_responses"),
        Index("ix_pair_project_status", "project_id", "status"),
        Index(
            "ix_pair_project_gold",
            "project_id",
            "id",
            postgresql_where=text("gold_answer IS NOT NULL"),
            sqlite_where=text("gold_answer IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False)
    response_a_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("response.id", ondelete="CASCADE"), nullable=False
    )
    response_b_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("response.id", ondelete="CASCADE"), nullable=False
    )
    strategy: Mapped[str] = mapped_column(String(32), nullable=False)
    rank: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    similarity: Mapped[float] = mapped_column(Float, nullable=False)
    priority: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PairStatus.QUEUED)
    labels_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Known answer ("a" / "b" = response_a / response_b won, "tie", "both_bad"): a gold check, never budgeted.
    gold_answer: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Aggregates of the labels in pair terms, written by the quality aggregation (app/quality/service.py):
    # the outcome by app/labels/outcome.py ("a", "b", "tie", "both_bad", "undecided"; null until aggregated,
    # and updated at once by a review), its agreement, and the Dawid-Skene view.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    agreement: Mapped[float | None] = mapped_column(Float, nullable=True)
    ds_choice: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ds_posterior: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    # A reviewer's verdict overrides the aggregates (history in pair_review).
    review_verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # A data team sent the pair to the review queue (POST .../requeue, action review), and why.
    review_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    review_request_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Labels asked for beyond annotations_per_pair (POST .../requeue, action label), each with a slot of its
    # own, at most project.max_extra_labels_per_pair.
    extra_labels: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The reward model's P(response_a beats response_b) for a decided pair, out of fold (from a model fitted
    # without this pair's label), and the reward-model version that computed it (app/active/service.py).
    model_p_a: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Why the pair is redundant (status redundant): the labelled pairs' responses that made it so.
    redundant_with: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class PairSlot(Base):
    """One wanted label of a pair; the unit a lease is taken on (at most one live lease per slot)."""

    __tablename__ = "pair_slot"
    __table_args__ = (
        UniqueConstraint("pair_id", "slot"),
        # The claim walks this index in its ORDER BY and stops at the first free slot (no sort).
        Index(
            "ix_pair_slot_claimable",
            "project_id",
            text("released DESC"),
            text("priority DESC"),
            "id",
            postgresql_where=text("NOT done"),
            sqlite_where=text("NOT done"),
        ),
        Index("ix_pair_slot_pair", "pair_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    pair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair.id", ondelete="CASCADE"), nullable=False)
    slot: Mapped[int] = mapped_column(Integer, nullable=False)
    # Copied from the pair so the claim query orders one table.
    priority: Mapped[float] = mapped_column(Float, nullable=False)
    done: Mapped[bool] = mapped_column(nullable=False, default=False)
    # Copied from the pair (released_at IS NOT NULL) so the claim orders one table and one index: slots of
    # released pairs first. Set on every lease; siblings are set when their pair is first released.
    released: Mapped[bool] = mapped_column(nullable=False, default=False)
    lease_assignment_id: Mapped[uuid.UUID | None] = mapped_column(Uuid(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PairReview(TimestampMixin, Base):
    """A reviewer's verdict on a pair (the audit trail; the newest is copied to pair.review_verdict)."""

    __tablename__ = "pair_review"
    __table_args__ = (Index("ix_pair_review_pair", "pair_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    pair_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pair.id", ondelete="CASCADE"), nullable=False)
    reviewer: Mapped[str] = mapped_column(String(200), nullable=False)
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class AnnotatorQuality(Base):
    """Per project and annotator: Dawid-Skene reliability and agreement, as of the last aggregation."""

    __tablename__ = "annotator_quality"
    __table_args__ = (UniqueConstraint("project_id", "annotator"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    annotator: Mapped[str] = mapped_column(String(200), nullable=False)
    reliability: Mapped[float | None] = mapped_column(Float, nullable=True)
    agreement_with_majority: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
