"""Export schedule request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool, ValidationInfo, field_validator

from app.exports.schemas import Compression, ExportFilters, Format, Style
from app.schedules import cron as cron_expressions
from app.schemas import Input, Int32, NoNulStr

MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 366 * 86_400


class ExportScheduleSet(Input):
    """`PUT /v1/projects/{project_id}/export-schedule`: when to export (an interval or a cron) and what."""

    every_seconds: Int32 | None = Field(
        default=None,
        ge=MIN_INTERVAL_SECONDS,
        le=MAX_INTERVAL_SECONDS,
        description="Export every this many seconds (at least 60); the first run is one interval after the "
        "PUT. Give this or `cron`.",
    )
    cron: NoNulStr | None = Field(
        default=None,
        max_length=200,
        validate_default=True,
        description="A 5-field cron expression in UTC (`minute hour day-of-month month day-of-week`, day of "
        "week 0–6 or sun–sat, Sunday = 0), e.g. `0 3 * * *`. Give this or `every_seconds`.",
    )
    format: Format = Field(default="jsonl", description="As in `POST .../exports`.")
    style: Style = Field(default="standard", description="As in `POST .../exports`.")
    compression: Compression = Field(default="none", description="As in `POST .../exports`.")
    include_partial: StrictBool = Field(default=False, description="As in `POST .../exports`.")
    filters: ExportFilters = Field(default_factory=ExportFilters)
    incremental: StrictBool = Field(
        default=False,
        description="Each scheduled export continues the previous succeeded scheduled export (`since`), so "
        "it holds only the rows whose outcome is new or changed since then; a due slot with nothing new "
        "since that export makes no export (`last_skip_reason`).",
    )

    @field_validator("cron")
    @classmethod
    def _one_timing(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "every_seconds" not in info.data:  # every_seconds is invalid itself; that error says enough
            return value
        every = info.data["every_seconds"]
        if value is None and every is None:
            raise ValueError("give every_seconds or cron")
        if value is not None and every is not None:
            raise ValueError("give every_seconds or cron, not both")
        return None if value is None else cron_expressions.parse(value).expression

    def export_request(self) -> dict[str, Any]:
        """What each scheduled export asks for (as stored)."""
        return {
            "format": self.format,
            "style": self.style,
            "compression": self.compression,
            "include_partial": self.include_partial,
            "filters": self.filters.normalised(),
        }


class ExportScheduleRead(BaseModel):
    project_id: uuid.UUID
    every_seconds: int | None
    cron: str | None
    format: str
    style: str
    compression: str
    include_partial: bool
    filters: dict[str, Any]
    incremental: bool
    next_run_at: datetime = Field(description="When the next scheduled export is due (UTC).")
    last_run_at: datetime | None = Field(description="When the scheduler last took a due slot.")
    last_export_id: uuid.UUID | None = Field(description="The export the last slot created, if any.")
    last_error: str | None = Field(
        description="Why the last due slot made no export (the previous one still running, or the request "
        "refused); null when it made one."
    )
    last_skip_reason: str | None = Field(
        description="Incremental: why the last due slot made no export because nothing changed since the "
        "previous one (e.g. `nothing changed since export ...`); null when it made one."
    )
    created_at: datetime
    updated_at: datetime
