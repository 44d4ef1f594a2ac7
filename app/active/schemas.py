"""The reward model as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class RewardModelRead(BaseModel):
    """One fit of the project's Bradley–Terry reward model on response embeddings."""

    id: uuid.UUID
    version: int = Field(description="1, 2, ... per project; the newest is the one in use.")
    fitted_at: datetime
    embedding_model: str
    features: str = Field(description="diff: φ(a) − φ(b) of the unit response embeddings.")
    l2: float
    pairs_used: int = Field(description="Decided pairs (a response won) it was fitted on.")
    labels_used: int = Field(description="Labels on those pairs.")
    cv_folds: int
    cv_accuracy: float | None = Field(description="Cross-validated share of winners it predicts.")
    cv_log_loss: float | None = Field(description="Cross-validated mean log-loss of the recorded winners.")


class RewardModelState(BaseModel):
    """The project's current reward model (null before the first fit) and every earlier version."""

    current: RewardModelRead | None
    history: list[RewardModelRead] = Field(description="Every fit, newest first (the current one included).")
    decided_pairs: int = Field(
        description="Non-gold pairs a response won, by the exports' rule, as of the last quality aggregation."
    )
    refit_every_pairs: int = Field(description="A refit is asked for after this many new decided pairs.")
    min_pairs: int = Field(description="No fit before this many decided pairs.")


class RefitRead(BaseModel):
    project_id: uuid.UUID
    current_version: int | None = Field(description="The version the refit will follow (null: none yet).")
