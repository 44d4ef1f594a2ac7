"""The reward model as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.active.suspects import ReasonCode, RequeueAction
from app.schemas import Input, NoNulStr


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
    next_refit_at_pairs: int = Field(
        description="The decided pairs at which the next automatic refit is asked for (refits space out as "
        "the project grows: at least REAL_REWARD_REFIT_GROWTH more than the newest fit used)."
    )
    min_pairs: int = Field(description="No fit before this many decided pairs.")


class RefitRead(BaseModel):
    project_id: uuid.UUID
    current_version: int | None = Field(description="The version the refit will follow (null: none yet).")


class SuspectReason(BaseModel):
    code: ReasonCode
    detail: str


class SuspectRead(BaseModel):
    """A decided pair whose recorded winner is probably wrong."""

    pair_id: uuid.UUID
    prompt_id: uuid.UUID
    result: Literal["a", "b"] = Field(description="The recorded winner: the pair's response_a or response_b.")
    winner_response_id: uuid.UUID
    labels: int
    agreement: float | None = Field(
        description="Share of the labels that chose the winner (null: one label)."
    )
    model_probability: float | None = Field(
        description="The reward model's out-of-fold P(the recorded winner wins); null before the first fit."
    )
    label_probability: float | None = Field(
        description="The Dawid–Skene posterior of the recorded result (votes and each voter's reliability); "
        "null until the quality aggregation computed one."
    )
    probability_right: float = Field(
        description="Both combined as independent evidence (log-odds add): P(the recorded winner is right)."
    )
    reasons: list[SuspectReason]
    extra_labels: int = Field(description="Labels asked for beyond annotations_per_pair so far.")
    extra_label_pending: bool = Field(description="An asked-for label is still awaited.")
    review_requested: bool


class SuspectsRead(BaseModel):
    """Suspected label errors, least likely right first."""

    items: list[SuspectRead]
    total: int = Field(description="Suspects below max_probability (items holds the first `limit`).")
    decided_pairs: int = Field(description="Decided, non-gold, unreviewed pairs weighed.")
    model_version: int | None = Field(description="The reward model version in use (null: none yet).")
    max_probability: float


class RequeueRequest(Input):
    action: RequeueAction = Field(
        description="label: ask one more label (spends one label of the budget, at most "
        "max_extra_labels_per_pair per pair); review: put the pair in the review queue."
    )
    note: NoNulStr | None = Field(
        default=None, max_length=2000, description="Why (kept with a review request)."
    )


class RequeueRead(BaseModel):
    pair_id: uuid.UUID
    action: RequeueAction
    changed: bool = Field(
        description="False when the request was already in effect (a retry changes nothing)."
    )
    extra_labels: int
    extra_label_pending: bool
    review_requested_at: datetime | None
    budget: int | None
    budget_committed: int = Field(
        description="Labels the budget has handed out or promised: released pairs' wanted labels plus extras."
    )
