"""Project: one labelling campaign with its strategy, budget and queue settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    Uuid,
    event,
    insert,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from app.db.base import Base, TimestampMixin, utcnow
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class Strategy(StrEnum):
    """How a pair is chosen among a prompt's responses (REAL and the paper's baselines)."""

    DISSIMILAR = "dissimilar"
    SIMILAR = "similar"
    CENTROID = "centroid"
    RANDOM = "random"
    # dissimilar's priority scaled by the reward model's uncertainty and novelty (app/active/acquisition.py)
    ACTIVE = "active"


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Project(TimestampMixin, Base):
    __tablename__ = "project"
    __table_args__ = (
        CheckConstraint("budget IS NULL OR budget >= 0", name="budget_non_negative"),
        CheckConstraint("annotations_per_pair >= 1", name="annotations_per_pair_positive"),
        CheckConstraint("pairs_per_prompt >= 1", name="pairs_per_prompt_positive"),
        CheckConstraint("max_extra_labels_per_pair >= 0", name="max_extra_labels_per_pair_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    strategy: Mapped[str] = mapped_column(String(32), nullable=False, default=Strategy.DISSIMILAR)
    budget: Mapped[int | None] = mapped_column(Integer, nullable=True)
    annotations_per_pair: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    pairs_per_prompt: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    lease_ttl_seconds: Mapped[int] = mapped_column(Integer, nullable=False, default=600)
    instructions: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # Responses at least this cosine-similar to an earlier one in the same prompt are collapsed before
    # pairing (null: only exact duplicates are).
    near_duplicate_threshold: Mapped[float | None] = mapped_column(Float, nullable=True, default=0.98)
    # Hold back a never-handed-out pair whose two responses both have near-duplicates (cosine at or above
    # the threshold above, 0.98 when null) among the responses of already labelled pairs
    # (app/neighbors/redundancy.py).
    skip_redundant_pairs: Mapped[bool] = mapped_column(nullable=False, default=False)
    # Share of claims that hand out a gold pair (when the annotator has one left to do).
    gold_rate: Mapped[float] = mapped_column(Float, nullable=False, default=0.1)
    # Annotators below this gold accuracy (with at least 3 gold answers) are flagged.
    gold_min_accuracy: Mapped[float] = mapped_column(Float, nullable=False, default=0.7)
    # Pairs with at least two labels whose agreement with the majority is below this go to review.
    review_agreement_threshold: Mapped[float] = mapped_column(Float, nullable=False, default=0.6)
    # How many labels beyond annotations_per_pair one pair may be asked for by a requeue (each spends one
    # label of the budget; app/active/suspects.py).
    max_extra_labels_per_pair: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    embedding_model: Mapped[str] = mapped_column(String(500), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ProjectStatus.ACTIVE)
    # The principal that created it (data teams see the projects they created and those granted to them).
    created_by_principal_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("principal.id", ondelete="SET NULL"), nullable=True
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class ProjectBudget(Base):
    """A project's budget counter: pairs handed out at least once (ProjectStats.pairs_released).

    Moved only by a conditional UPDATE (the claim's last write), so it never passes project.budget. A row
    of its own, not a project column: every claim's and label's foreign key check takes a KEY SHARE lock on
    the project row, and a counter updated on that same row by every claim turns those locks into
    multixacts, which measured 132 against 350 round trips/s at 50 annotators (docs/benchmarks.md).
    """

    __tablename__ = "project_budget"
    __table_args__ = (
        CheckConstraint("pairs_released >= 0", name="pairs_released_non_negative"),
        CheckConstraint("extra_labels >= 0", name="extra_labels_non_negative"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    pairs_released: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Labels asked for beyond the pairs' own annotations_per_pair (requeues), spent from the budget when
    # asked: a pair can be released while pairs_released · annotations_per_pair + extra_labels stays within
    # the budget (app/queue/budget.py).
    extra_labels: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


@event.listens_for(Project, "after_insert")
def _open_budget_counter(_mapper: Mapper[Any], connection: Connection, project: Project) -> None:
    """Every project has its counter from its first flush (the claim only ever UPDATEs it)."""
    connection.execute(insert(ProjectBudget).values(project_id=project.id, pairs_released=0, extra_labels=0))
