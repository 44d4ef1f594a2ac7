"""Export runs: one DPO dataset (data file + manifest.json) each, immutable once succeeded."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ExportRun(TimestampMixin, Base):
    __tablename__ = "export_run"
    __table_args__ = (Index("ix_export_run_project_id", "project_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    # The request, whole: format, style, compression, snapshot_at, since and the normalised filters.
    format: Mapped[str] = mapped_column(String(16), nullable=False)
    style: Mapped[str] = mapped_column(String(16), nullable=False, default="standard")
    compression: Mapped[str] = mapped_column(String(16), nullable=False, default="none")
    since_export_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("export_run.id", ondelete="SET NULL"), nullable=True
    )
    # The `since` export's snapshot_at, copied at creation: the window stays fixed even if that row goes.
    since_snapshot_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    filters: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Pairs without all their labels (nor a verdict) too, not only completed ones.
    include_partial: Mapped[bool] = mapped_column(nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ExportStatus.QUEUED)
    snapshot_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Each take-over of the run (first start, or a re-queue of a stuck one) bumps this fencing token.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The data file (a local path or an fsspec URL) and the folder it lies in with manifest.json.
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
