"""A project's label-quality snapshot, written by the ``quality.aggregate`` task and read by the API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.types import UTCDateTime


class QualitySnapshot(Base):
    """Agreement statistics as of ``computed_at`` (one row per project, replaced by each aggregation)."""

    __tablename__ = "quality_snapshot"

    project_id: Mapped[uuid.UUID] = mapped_column(
        Uuid(), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Every label row of the project (ordinary and gold) when computed: a different count now (a new label
    # or an undo) makes the snapshot stale even when no label is newer than computed_at.
    labels_count_at_compute: Mapped[int] = mapped_column(Integer, nullable=False)
    labels: Mapped[int] = mapped_column(Integer, nullable=False)
    gold_labels: Mapped[int] = mapped_column(Integer, nullable=False)
    pairs_labelled: Mapped[int] = mapped_column(Integer, nullable=False)
    pairs_with_overlap: Mapped[int] = mapped_column(Integer, nullable=False)
    krippendorff_alpha: Mapped[float | None] = mapped_column(Float, nullable=True)
    # {kappa, raters, items, items_left_out}
    fleiss: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # [{annotators: [x, y], kappa, items}] per annotator pair sharing at least two pairs
    cohen: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    # {iterations, converged, priors}; null until some pair has two or more labels
    dawid_skene: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
