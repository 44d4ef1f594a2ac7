"""Project request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from app.embeddings.embedder import check_model_name
from app.projects.models import ProjectStatus, Strategy
from app.schemas import Input, Int32, NoNulStr

# Checked without loading torch: a packaged name or a local model folder (nothing is downloaded).
EmbeddingModelName = Annotated[NoNulStr, AfterValidator(check_model_name)]
EMBEDDING_MODEL_HELP = (
    "The packaged all-MiniLM-L6-v2, or the absolute path of a local sentence-transformers model or Hugging "
    "Face causal LM folder; recorded with every vector. Changing it re-embeds and re-pairs the prompts "
    "none of whose pairs was handed out yet. Options after '@', joined by '+': a faster backend for a "
    "sentence-transformers model (onnx: the same vectors through ONNX Runtime; onnx-int8: int8 weights; "
    "static: a model2vec model distilled from it, for very large jobs) and seqN (read at most N tokens of "
    "each text), e.g. sentence-transformers/all-MiniLM-L6-v2@onnx-int8; their speed and how much of "
    "REAL's benefit each keeps are in docs/benchmarks.md."
)

SKIP_REDUNDANT_HELP = (
    "Hold back a pair not yet handed out whose two responses both have a near-duplicate (cosine at or above "
    "near_duplicate_threshold, 0.98 when null, by the neighbour index) among the responses of pairs that "
    "already have a label: it becomes `redundant` and is never claimed. Turning it off queues them again."
)

EXTRA_LABELS_HELP = (
    "How many labels beyond annotations_per_pair one pair may be asked for (POST "
    ".../pairs/{pair_id}/requeue, e.g. on a suspected label error); each spends one label of the budget."
)


class ProjectCreate(Input):
    name: NoNulStr = Field(min_length=1, max_length=200)
    strategy: Strategy = Strategy.DISSIMILAR
    budget: Int32 | None = Field(
        default=None, ge=0, description="Labels the project may store; null = unlimited."
    )
    annotations_per_pair: Int32 = Field(default=1, ge=1, le=20)
    pairs_per_prompt: Int32 = Field(default=1, ge=1, le=50)
    lease_ttl_seconds: Int32 = Field(default=600, ge=10, le=86_400)
    instructions: NoNulStr = Field(default="", max_length=20_000)
    embedding_model: EmbeddingModelName | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description=EMBEDDING_MODEL_HELP + " Default: the REAL_EMBEDDING_MODEL setting.",
    )
    near_duplicate_threshold: float | None = Field(
        default=0.98,
        gt=0,
        le=1,
        description="Collapse responses at least this cosine-similar within a prompt before pairing; null: "
        "exact duplicates only.",
    )
    gold_rate: float = Field(
        default=0.1, ge=0, le=1, description="Share of claims that hand out a gold pair."
    )
    gold_min_accuracy: float = Field(default=0.7, ge=0, le=1)
    review_agreement_threshold: float = Field(default=0.6, ge=0, le=1)
    skip_redundant_pairs: StrictBool = Field(default=False, description=SKIP_REDUNDANT_HELP)
    max_extra_labels_per_pair: Int32 = Field(default=1, ge=0, le=20, description=EXTRA_LABELS_HELP)


class ProjectUpdate(Input):
    """Fields to change. strategy, annotations_per_pair and pairs_per_prompt only while no pair exists."""

    name: NoNulStr | None = Field(default=None, min_length=1, max_length=200)
    strategy: Strategy | None = None
    budget: Int32 | None = Field(default=None, ge=0)
    annotations_per_pair: Int32 | None = Field(default=None, ge=1, le=20)
    pairs_per_prompt: Int32 | None = Field(default=None, ge=1, le=50)
    lease_ttl_seconds: Int32 | None = Field(default=None, ge=10, le=86_400)
    instructions: NoNulStr | None = Field(default=None, max_length=20_000)
    near_duplicate_threshold: float | None = Field(default=None, gt=0, le=1)
    embedding_model: EmbeddingModelName | None = Field(
        default=None, min_length=1, max_length=500, description=EMBEDDING_MODEL_HELP
    )
    gold_rate: float | None = Field(default=None, ge=0, le=1)
    gold_min_accuracy: float | None = Field(default=None, ge=0, le=1)
    review_agreement_threshold: float | None = Field(default=None, ge=0, le=1)
    skip_redundant_pairs: StrictBool | None = Field(default=None, description=SKIP_REDUNDANT_HELP)
    max_extra_labels_per_pair: Int32 | None = Field(default=None, ge=0, le=20, description=EXTRA_LABELS_HELP)


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
    near_duplicate_threshold: float | None
    gold_rate: float
    gold_min_accuracy: float
    review_agreement_threshold: float
    skip_redundant_pairs: bool
    max_extra_labels_per_pair: int
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
    gold_labels: int
    budget: int | None
    budget_remaining: int | None
    pairs_released: int
    redundant_pairs: int = Field(
        description="Pairs held back as redundant (skip_redundant_pairs): never handed out, not budgeted."
    )
