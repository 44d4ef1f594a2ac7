"""A pair's outcome as the API shows it (app/labels/outcome.py decides it)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.labels.outcome import Outcome


class OutcomeRead(BaseModel):
    """What the pair's labels (and a reviewer's verdict) decide, by the same rule as exports."""

    result: Literal["a", "b", "tie", "both_bad"] | None = Field(
        description="a / b: the pair's response_a / response_b won; tie; both_bad; null: undecided or no "
        "labels yet."
    )
    reason: Literal["tie", "both_bad", "tied_majority"] | None = Field(
        description="Why no response won (tied_majority: the responses tie, or tie + both_bad labels match "
        "or outnumber the leader); null when one did or there are no labels."
    )
    labels: int
    reviewed: bool = Field(description="A reviewer's verdict decided it.")
    completed: bool = Field(description="All the labels the project wants are in, or a reviewer decided.")
    agreement: float | None = Field(description="Share of the labels that chose the result (2+ labels).")
    label_smoothing: float = Field(description="Suggested cDPO epsilon if exported (docs/exports.md).")
    weight: float = Field(description="Suggested loss weight if exported (docs/exports.md).")

    @classmethod
    def of(cls, decided: Outcome) -> OutcomeRead:
        return cls(
            result=decided.result,
            reason=decided.reason,
            labels=decided.labels,
            reviewed=decided.reviewed,
            completed=decided.completed,
            agreement=decided.agreement,
            label_smoothing=decided.label_smoothing,
            weight=decided.weight,
        )
