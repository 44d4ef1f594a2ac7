"""The export request (one schema for the API and for schedulers) and what the API answers about exports."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, model_validator

from app.exports.models import ExportStatus
from app.schemas import Input, IsoDateTime

Format = Literal["jsonl", "parquet"]
Style = Literal["standard", "conversational"]
Compression = Literal["none", "gzip"]
ReviewedFilter = Literal["include", "exclude", "only"]


def _utc(value: datetime) -> datetime:
    """Aware datetimes in UTC; one that UTC cannot represent (year 1 at +05:00, say) is invalid."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ValueError("the date is out of range once converted to UTC") from exc


UTCTimestamp = Annotated[IsoDateTime, AfterValidator(_utc)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ExportFilters(Input):
    """Which pairs with a winner make it into the file. Gold pairs never do, whatever the filters."""

    min_agreement: Share | None = Field(
        default=None,
        description="Keep pairs whose agreement (share of labels agreeing with the winner) is at least this. "
        "Single-label pairs (agreement null) do not pass; reviewed pairs pass (the verdict decides).",
    )
    min_posterior: Share | None = Field(
        default=None,
        description="Keep pairs whose Dawid–Skene posterior of the winner is at least this. Pairs without a "
        "posterior (no overlapping labels in the snapshot) do not pass; reviewed pairs pass.",
    )
    reviewed: ReviewedFilter = Field(
        default="include", description="Reviewed pairs: keep them too, leave them out, or keep only them."
    )
    labeled_after: UTCTimestamp | None = Field(
        default=None, description="Keep pairs whose completing (latest counted) label is at or after this."
    )
    labeled_before: UTCTimestamp | None = Field(
        default=None, description="Keep pairs whose completing (latest counted) label is before this."
    )

    @model_validator(mode="after")
    def _range(self) -> ExportFilters:
        if self.labeled_after and self.labeled_before and self.labeled_after >= self.labeled_before:
            raise ValueError("labeled_after must be before labeled_before")
        return self

    def normalised(self) -> dict[str, Any]:
        """Every filter with its value (defaults included), JSON-able, in a fixed order."""
        return {
            "min_agreement": self.min_agreement,
            "min_posterior": self.min_posterior,
            "reviewed": self.reviewed,
            "labeled_after": _iso(self.labeled_after),
            "labeled_before": _iso(self.labeled_before),
        }


class ExportRequest(Input):
    """`POST /v1/projects/{project_id}/exports`: what to export, how, and as of when."""

    format: Format = Field(default="jsonl", description="`jsonl` (one JSON object per line) or `parquet`.")
    style: Style = Field(
        default="standard",
        description="TRL's preference format: `standard` (prompt/chosen/rejected strings) or "
        "`conversational` (lists of {role, content} messages).",
    )
    compression: Compression = Field(
        default="none",
        description="`gzip`: JSONL is written as data.jsonl.gz; Parquet compresses its column chunks with "
        "GZIP inside data.parquet. `none`: uncompressed.",
    )
    snapshot_at: UTCTimestamp | None = Field(
        default=None, description="Export the labels as of this instant (default: now; not in the future)."
    )
    since: uuid.UUID | None = Field(
        default=None,
        description="A succeeded export of the same project, style, filters and include_partial: only the "
        "rows whose outcome is new or changed since it, and the manifest's `retracted` pair ids (see "
        "docs/exports.md, incremental exports).",
    )
    include_partial: StrictBool = Field(
        default=False,
        description="Also pairs that do not have all their labels yet (and no reviewer verdict); by default "
        "only completed pairs are exported. Their `completed` is false and `weight` is scaled by the share "
        "of the wanted labels that are in.",
    )
    filters: ExportFilters = Field(default_factory=ExportFilters)


class ManifestSummary(BaseModel):
    """The counts of a succeeded export's manifest.json."""

    schema_version: int
    rows: int
    retracted: int = Field(description="Incremental: pairs of the chain that are no longer rows.")
    replaced: int = Field(description="Incremental: rows sent again because their outcome changed.")
    excluded: dict[str, int]
    label_counts: dict[str, int]
    files: dict[str, dict[str, Any]]


class ExportRead(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    format: str
    style: str
    compression: str
    since: uuid.UUID | None = Field(description="The export this one continues (incremental), if any.")
    since_snapshot_at: datetime | None
    include_partial: bool
    filters: dict[str, Any]
    status: ExportStatus
    snapshot_at: datetime
    rows: int | None
    sha256: str | None = Field(description="sha256 of the data file, as downloaded.")
    bytes: int | None
    file_name: str | None = Field(
        description="The data file's name: data.jsonl, data.jsonl.gz or data.parquet."
    )
    media_type: str
    manifest: ManifestSummary | None
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Manifest(BaseModel):
    """manifest.json, as stored beside the data file (see docs/exports.md for every field)."""

    schema_version: int
    code_version: str
    export_id: uuid.UUID
    project_id: uuid.UUID
    created_at: datetime
    request: dict[str, Any]
    snapshot_at: datetime
    since_snapshot_at: datetime | None
    annotations_per_pair: int | None = None
    columns: list[str]
    counts: dict[str, Any]
    retracted: list[str] = Field(default_factory=list)
    replaced: list[str] = Field(default_factory=list)
    dawid_skene: dict[str, Any] | None
    label_smoothing: dict[str, Any]
    inputs: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    files: dict[str, dict[str, Any]]
    writer: dict[str, Any]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


def iso(value: datetime) -> str:
    """One textual form for every instant in files and manifests: UTC, microseconds, `Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
