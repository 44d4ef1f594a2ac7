"""Claim and label bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.queue.models import Choice
from app.schemas import Input, NoNulStr


class ClaimRequest(Input):
    annotator: NoNulStr | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Admin keys only: claim on behalf of this annotator (integrations, tests).",
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
    choice: Choice


class LabelRead(BaseModel):
    id: uuid.UUID
    assignment_id: uuid.UUID
    pair_id: uuid.UUID
    annotator: str
    choice: Choice
    winner_response_id: uuid.UUID | None
    shown_first_response_id: uuid.UUID
    labeled_at: datetime
