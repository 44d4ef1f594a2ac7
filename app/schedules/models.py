"""Export schedules: per project, an interval or a cron expression and the export request to run."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, utcnow
from app.db.types import UTCDateTime


class ExportSchedule(TimestampMixin, Base):
    __tablename__ = "export_schedule"
    __table_args__ = (
        CheckConstraint("(every_seconds IS NULL) <> (cron IS NULL)", name="interval_or_cron"),
        CheckConstraint("every_seconds IS NULL OR every_seconds >= 60", name="every_seconds_minimum"),
        Index("ix_export_schedule_next_run_at", "next_run_at"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    every_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cron: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # format, style, compression and the normalised filters (ExportFilters.normalised()).
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    # Each scheduled export continues the previous succeeded one (`since`).
    incremental: Mapped[bool] = mapped_column(nullable=False, default=False)
    # The next due slot; the runner moves it forward with a compare-and-set (with `revision`), so one slot
    # makes at most one export whatever the number of runners.
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # Bumped by every PUT: a runner that read an older schedule changes nothing.
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_export_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("export_run.id", ondelete="SET NULL"), nullable=True
    )
    # Why the last due slot made no export (skipped while the previous one ran, or refused); null otherwise.
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Incremental: why the last due slot made no export because nothing changed since the previous one.
    last_skip_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )
