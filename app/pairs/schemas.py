"""Pair read bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from app.pairs.models import PairStatus


class PairResponse(BaseModel):
    id: uuid.UUID
    external_id: str | None
    model: str | None
    text: str


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
