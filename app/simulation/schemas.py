"""Simulation jobs over HTTP: the parameters (the CLI's, by the engine's names) and the job as read back."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.projects.schemas import EMBEDDING_MODEL_HELP, EmbeddingModelName
from app.simulation import engine
from app.simulation.annotators import ConstantNoise, SimilarityNoise
from app.simulation.models import SimulationPhase, SimulationStatus

# The engine's own defaults, so the API and `real-align simulate` start from the same values.
_ENGINE = engine.Config(budgets=(1,))
_CONSTANT, _SIMILARITY = ConstantNoise(), SimilarityNoise()
MAX_REPEATS = 100
MAX_BUDGETS = 50


class SimulationParameters(BaseModel):
    """What to simulate; the ranges are the engine's (docs/simulation.md), checked when the job is created."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    budgets: list[int] = Field(
        min_length=1,
        max_length=MAX_BUDGETS,
        description="Label counts to report (sorted, repeats dropped, as `--budget`); the largest is the "
        "full budget, which needs as many training prompts.",
    )
    strategies: list[str] = Field(
        default=list(engine.STRATEGIES),
        min_length=1,
        max_length=len(engine.STRATEGIES),
        description=f"Distinct names among {', '.join(engine.STRATEGIES)}.",
    )
    repeats: int = Field(default=_ENGINE.repeats, le=MAX_REPEATS)
    seed: int = Field(default=_ENGINE.seed, ge=-(2**63), le=2**63 - 1)
    noise: Literal["constant", "similarity"] = "constant"
    epsilon: float = Field(default=_CONSTANT.epsilon, description="constant: the flip probability")
    epsilon_min: float = Field(default=_SIMILARITY.epsilon_min, description="similarity: ε at low cosine")
    epsilon_max: float = Field(default=_SIMILARITY.epsilon_max, description="similarity: ε at high cosine")
    similarity_low: float | None = Field(
        default=None, description="similarity: the cosine where the ramp starts (default: 5th percentile)"
    )
    similarity_high: float | None = Field(
        default=None, description="similarity: the cosine where the ramp ends (default: 95th percentile)"
    )
    held_out: float = Field(default=_ENGINE.held_out, description="Share of prompts held out for accuracy.")
    round_size: int = Field(default=_ENGINE.round_size, description="active: labels per round.")
    every: int = Field(default=_ENGINE.every, description="Evaluate the reward model every N labels.")
    l2: float = Field(default=_ENGINE.l2, description="Reward model L2 strength.")
    near_duplicate_threshold: float | None = Field(
        default=_ENGINE.near_duplicate_threshold, description="Cosine; null keeps every response."
    )
    uncertainty_weight: float = Field(default=_ENGINE.uncertainty_weight)
    novelty_weight: float = Field(default=_ENGINE.novelty_weight)
    embedding_model: EmbeddingModelName | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description=EMBEDDING_MODEL_HELP.split(";")[0] + ". Default: the REAL_EMBEDDING_MODEL setting.",
    )

    @field_validator("budgets")
    @classmethod
    def _sorted(cls, budgets: list[int]) -> list[int]:
        # As the CLI's --budget: a set of label counts, in order.
        return sorted(set(budgets))


class SimulationFile(BaseModel):
    name: str
    media_type: str
    bytes: int
    sha256: str
    url: str


class SimulationInputRead(BaseModel):
    name: str
    sha256: str
    bytes: int
    format: str
    prompts: int
    responses: int


class SimulationRead(BaseModel):
    id: uuid.UUID
    status: SimulationStatus
    phase: SimulationPhase | None = Field(
        description="While running: embedding (done/total texts not yet embedded), then simulating "
        "(done/total strategy × repeat runs), then writing."
    )
    done: int
    total: int
    parameters: dict[str, Any]
    embedding_model: str
    input: SimulationInputRead
    created_by: str
    attempts: int
    error: str | None
    files: list[SimulationFile]
    created_at: datetime
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
