"""Claim and label bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.queue.models import Choice
from app.schemas import Input, Int32, NoNulStr


class ClaimRequest(Input):
    annotator: NoNulStr | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Admin keys only: claim on behalf of this annotator, an existing annotator principal "
        "that may work on the project (422 naming `annotator` otherwise).",
    )


class ShownResponse(BaseModel):
    id: uuid.UUID
    text: str


class ClaimRead(BaseModel):
    assignment_id: uuid.UUID
    lease_expires_at: datetime
    annotator: str
    prompt: str | list[dict[str, Any]]
    instructions: str
    response_a: ShownResponse = Field(description="Shown in screen position a.")
    response_b: ShownResponse = Field(description="Shown in screen position b.")


class LabelRequest(Input):
    choice: Choice = Field(
        description="a / b: the response shown in that screen position won; tie; both_bad."
    )
    confidence: Int32 | None = Field(default=None, ge=1, le=5, description="1 (unsure) to 5 (certain).")
    rationale: NoNulStr | None = Field(default=None, max_length=5_000)


class SkipRequest(Input):
    reason: NoNulStr | None = Field(default=None, max_length=1_000)


class LeaseRead(BaseModel):
    assignment_id: uuid.UUID
    status: str
    lease_expires_at: datetime
    renewals_left: int


class LabelRead(BaseModel):
    id: uuid.UUID
    assignment_id: uuid.UUID
    pair_id: uuid.UUID
    annotator: str
    choice: Choice
    winner_response_id: uuid.UUID | None
    shown_first_response_id: uuid.UUID
    labeled_at: datetime
    confidence: int | None
    rationale: str | None
