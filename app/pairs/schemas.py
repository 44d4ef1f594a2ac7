"""Pair read bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.labels.schemas import OutcomeRead
from app.pairs.models import PairStatus


class PairResponse(BaseModel):
    id: uuid.UUID
    external_id: str | None
    model: str | None
    text: str


class RedundancyEvidence(BaseModel):
    similar_response_id: uuid.UUID = Field(description="A response of an already labelled pair.")
    labelled_pair_id: uuid.UUID
    similarity: float = Field(description="Cosine similarity to this response (1.0: the identical text).")


class RedundantWith(BaseModel):
    """Why a pair is held back as redundant: each response's near-duplicate among labelled pairs."""

    threshold: float
    index_version: int | None = Field(description="The response index version used; null: ranked on the fly.")
    response_a: RedundancyEvidence
    response_b: RedundancyEvidence


class PairRead(BaseModel):
    id: uuid.UUID
    prompt_id: uuid.UUID
    prompt_external_id: str
    response_a: PairResponse
    response_b: PairResponse
    strategy: str
    rank: int
    similarity: float
    priority: float
    status: PairStatus
    labels: int
    created_at: datetime
    redundant_with: RedundantWith | None = Field(
        default=None, description="Status redundant: the labelled pairs that made it so (else null)."
    )
    outcome: OutcomeRead = Field(description="What the pair's labels decide now (the export's rule).")
