"""What the client returns. Unknown fields a newer server adds are kept (``model_extra``), not refused."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

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


class UploadResult(_Read):
    """What one streamed upload (`Client.upload`) stored; the refused lines are `Client.upload_errors`."""

    job_id: uuid.UUID
    lines: int
    accepted: int
    duplicates: int
    errors: int
    complete: bool = True
    error: str | None = None


class LineError(_Read):
    """A line of an upload that was not stored (nothing of it was), and why."""

    line: int
    external_id: str | None = None
    field: str | None = None
    detail: str


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

Choice = Literal["a", "b", "tie", "both_bad"]
# Why a claim found nothing (the server's Real-Queue-Reason); a newer server may add others.
QueueReason = Literal["empty", "budget_spent", "waiting_for_embeddings"]


class ShownResponse(_Read):
    """One response of an assignment, as the annotator sees it (no model name)."""

    id: uuid.UUID
    text: str


class Assignment(_Read):
    """A pair leased to an annotator until ``lease_expires_at``: label, skip, release or renew it.

    ``response_a`` and ``response_b`` are screen positions, shuffled per assignment: a label's choice "a"
    means ``response_a`` won.
    """

    assignment_id: uuid.UUID
    lease_expires_at: datetime
    annotator: str
    prompt: str | list[dict[str, Any]] = Field(
        description="The prompt text, or chat messages {role, content}."
    )
    instructions: str = ""
    response_a: ShownResponse
    response_b: ShownResponse
    project_id: uuid.UUID | None = Field(default=None, description="The project it was claimed in.")

    @property
    def id(self) -> uuid.UUID:
        """The assignment's id (``assignment_id``)."""
        return self.assignment_id

    def side_of(self, response: ShownResponse | uuid.UUID | str) -> Literal["a", "b"]:
        """The screen position ("a" or "b") of one of this pair's responses; ValueError for another."""
        response_id = response.id if isinstance(response, ShownResponse) else uuid.UUID(str(response))
        if response_id == self.response_a.id:
            return "a"
        if response_id == self.response_b.id:
            return "b"
        raise ValueError(f"response {response_id} is not one of assignment {self.assignment_id}'s")


class NothingToClaim(_Read):
    """A claim that found no pair: why (the server's ``Real-Queue-Reason``) and when to ask again.

    False in a boolean context, so ``if assignment := client.claim(project_id):`` reads naturally.
    """

    reason: QueueReason | str = Field(description="empty, budget_spent or waiting_for_embeddings")
    retry_after: float | None = Field(default=None, description="Seconds until asking again may help.")

    def __bool__(self) -> bool:
        return False


class Label(_Read):
    """A stored label. ``replayed``: the server answered a retry with this first label (nothing new)."""

    id: uuid.UUID
    assignment_id: uuid.UUID
    pair_id: uuid.UUID
    annotator: str
    choice: Choice
    winner_response_id: uuid.UUID | None = None
    shown_first_response_id: uuid.UUID | None = None
    labeled_at: datetime
    confidence: int | None = None
    rationale: str | None = None
    replayed: bool = False


class Lease(_Read):
    """An assignment's lease after a renew, release or skip."""

    assignment_id: uuid.UUID
    status: str = Field(description="active, released, skipped, ...")
    lease_expires_at: datetime
    renewals_left: int
