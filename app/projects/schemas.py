"""Project request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.projects.models import ProjectStatus, Strategy
from app.schemas import Input, NoNulStr, StrictInt


class ProjectCreate(Input):
    name: NoNulStr = Field(min_length=1, max_length=200)
    strategy: Strategy = Strategy.DISSIMILAR
    budget: StrictInt | None = Field(
        default=None, ge=0, description="Labels the project may store; null = unlimited."
    )
    annotations_per_pair: StrictInt = Field(default=1, ge=1, le=20)
    pairs_per_prompt: StrictInt = Field(default=1, ge=1, le=50)
    lease_ttl_seconds: StrictInt = Field(default=600, ge=10, le=86_400)
    instructions: NoNulStr = Field(default="", max_length=20_000)


class ProjectUpdate(Input):
    """Fields to change. strategy, annotations_per_pair and pairs_per_prompt only while no pair exists."""

    name: NoNulStr | None = Field(default=None, min_length=1, max_length=200)
    strategy: Strategy | None = None
    budget: StrictInt | None = Field(default=None, ge=0)
    annotations_per_pair: StrictInt | None = Field(default=None, ge=1, le=20)
    pairs_per_prompt: StrictInt | None = Field(default=None, ge=1, le=50)
    lease_ttl_seconds: StrictInt | None = Field(default=None, ge=10, le=86_400)
    instructions: NoNulStr | None = Field(default=None, max_length=20_000)


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    strategy: Strategy
    budget: int | None
    annotations_per_pair: int
    pairs_per_prompt: int
    lease_ttl_seconds: int
    instructions: str
    embedding_model: str
    status: ProjectStatus
    created_at: datetime
    updated_at: datetime


class ProjectStats(BaseModel):
    prompts: int
    responses: int
    embedded: int
    unpairable: int
    pairs: int
    labels: int
    budget: int | None
    budget_remaining: int | None
    pairs_released: int
