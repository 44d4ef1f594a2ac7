"""Reward models fitted on a project's decided pairs: one versioned row per fit."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class RewardModelFit(Base):
    __tablename__ = "reward_model"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    # 1, 2, ... per project; the newest is the one in use.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    embedding_model: Mapped[str] = mapped_column(String(500), nullable=False)
    features: Mapped[str] = mapped_column(String(32), nullable=False)  # "diff" or "diff+prompt"
    l2: Mapped[float] = mapped_column(Float, nullable=False)
    # Decided pairs (a response won) it was fitted on, and the labels on them.
    pairs_used: Mapped[int] = mapped_column(Integer, nullable=False)
    labels_used: Mapped[int] = mapped_column(Integer, nullable=False)
    cv_folds: Mapped[int] = mapped_column(Integer, nullable=False)
    cv_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    cv_log_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Little-endian float32 weights over the comparison features.
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    weights: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
