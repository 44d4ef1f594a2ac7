"""What the client returns. Unknown fields a newer server adds are kept (``model_extra``), not refused."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Read(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Project(_Read):
    id: uuid.UUID
    name: str
    strategy: str
    budget: int | None = None
    annotations_per_pair: int = 1
    pairs_per_prompt: int = 1
    lease_ttl_seconds: int | None = None
    instructions: str = ""
    embedding_model: str | None = None
    status: str = "active"
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ProjectStats(_Read):
    prompts: int
    responses: int
    embedded: int
    unpairable: int
    pairs: int
    labels: int
    budget: int | None = None
    budget_remaining: int | None = None


class IngestConflict(_Read):
    index: int = Field(description="Position of the record in everything passed to one ingest() call.")
    external_id: str
    detail: str


class IngestResult(_Read):
    """The sum over every batch one ingest() call sent."""

    accepted: int = 0
    duplicates: int = 0
    conflicts: list[IngestConflict] = Field(default_factory=list)
    job_ids: list[uuid.UUID] = Field(default_factory=list)
    batches: int = 0


class Export(_Read):
    id: uuid.UUID
    project_id: uuid.UUID
    format: str
    status: str = Field(description="queued, running, succeeded or failed")
    snapshot_at: datetime | None = None
    rows: int | None = None
    sha256: str | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    style: str | None = None
    compression: str | None = None
    since: uuid.UUID | None = Field(default=None, description="The export this one continues, if any.")
    filters: dict[str, Any] | None = None
    file_name: str | None = Field(default=None, description="The data file's name, e.g. data.jsonl.gz.")
    bytes: int | None = None
    manifest: dict[str, Any] | None = Field(default=None, description="The manifest's counts, once done.")

    @property
    def finished(self) -> bool:
        """Succeeded or failed: the export will not change any more."""
        return self.status in ("succeeded", "failed")


Manifest = dict[str, Any]
