"""One pair's labels → its export row, or the reason it is left out. Pure functions, no database.

Choices are canonical (``app.quality.service.canonical``): "a" / "b" name the pair's response_a / response_b,
never a screen position. Counts are indexed like ``CHOICES``.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.prompts.text import prompt_text  # TRL's standard format: one string (shared with embedding)
from app.quality.agreement import CATEGORIES

CHOICES: tuple[str, ...] = CATEGORIES  # ("a", "b", "tie", "both_bad")
A, B, TIE, BOTH_BAD = range(4)

# Why a considered pair is not a row, in the order the checks run (the first that applies is counted).
REASONS: tuple[str, ...] = (
    "gold",  # a gold check on annotators, never training data
    "tied_majority",  # no response won: see decide()
    "tie",  # the labels' (or the reviewer's) outcome is "tie"
    "both_bad",  # ... is "both_bad"
    "reviewed",  # filters.reviewed = "exclude"
    "not_reviewed",  # filters.reviewed = "only"
    "outside_labeled_range",  # completing label outside [labeled_after, labeled_before)
    "below_min_agreement",  # agreement below filters.min_agreement, or unknown (one label)
    "below_min_posterior",  # Dawid–Skene posterior below filters.min_posterior, or unknown
)

# label_smoothing for a pair whose agreement is unknown (one label) or that a reviewer decided.
SINGLE_LABEL_SMOOTHING = 0.0
REVIEWED_SMOOTHING = 0.0
MAX_SMOOTHING = 0.5

METADATA_COLUMNS: tuple[str, ...] = (
    "pair_id",
    "prompt_external_id",
    "chosen_response_external_id",
    "rejected_response_external_id",
    "chosen_model",
    "rejected_model",
    "similarity",
    "strategy",
    "num_labels",
    "agreement",
    "ds_posterior",
    "reviewed",
    "label_smoothing",
    "weight",
    "completed_at",
)


def columns() -> list[str]:
    """Every column of an export file, in file order (the same for both styles)."""
    return ["prompt", "chosen", "rejected", *METADATA_COLUMNS]


def decide(counts: tuple[int, int, int, int], verdict: str | None) -> tuple[int | None, str | None]:
    """(winner index A or B, None) or (None, reason).

    The reviewer's verdict (as of the snapshot) decides when there is one. Otherwise a response wins when it
    has strictly more labels than the other response and than tie + both_bad labels together; with no
    winner the reason is "tie" or "both_bad" when that outcome has strictly the most labels, else
    "tied_majority" (the two responses tie, or abstentions match or outnumber the leader).
    """
    if verdict is not None:
        if verdict in ("a", "b"):
            return CHOICES.index(verdict), None
        return None, verdict if verdict in ("tie", "both_bad") else "tied_majority"
    a, b, tie, both_bad = counts
    abstain = tie + both_bad
    if a > b and a > abstain:
        return A, None
    if b > a and b > abstain:
        return B, None
    ranked = sorted(range(4), key=lambda k: counts[k], reverse=True)
    if counts[ranked[0]] > counts[ranked[1]] and ranked[0] in (TIE, BOTH_BAD):
        return None, CHOICES[ranked[0]]
    return None, "tied_majority"


def agreement(counts: tuple[int, int, int, int], winner: int) -> float | None:
    """Share of the pair's labels that agree with the winner; None (never NaN) with fewer than two labels."""
    total = sum(counts)
    if total < 2:
        return None
    return counts[winner] / total


def smoothing_and_weight(share: float | None, reviewed: bool) -> tuple[float, float]:
    """The suggested cDPO label_smoothing ε and a loss weight, from agreement (docs/exports.md).

    ε = clip(1 − agreement, 0, 0.5): the observed chance that one more label would have disagreed with the
    chosen response, as an estimate of the flip rate cDPO takes. weight = 1 − 2ε: the majority's margin over
    a coin flip (1 for unanimous pairs, 0 when the labels are split evenly). A reviewer's verdict is taken
    as correct (ε = 0, weight = 1). One label gives no evidence of disagreement: ε = 0, weight = 1 (plain
    DPO, TRL's default label_smoothing).
    """
    if reviewed:
        epsilon = REVIEWED_SMOOTHING
    elif share is None:
        epsilon = SINGLE_LABEL_SMOOTHING
    else:
        epsilon = min(MAX_SMOOTHING, max(0.0, 1.0 - share))
    return round(epsilon, 6), round(1.0 - 2.0 * epsilon, 6)


def conversation(prompt: Any) -> list[dict[str, str]]:
    """A prompt as chat messages: a string becomes one user turn; stored messages stay turns."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


def winner_of(labels: list[tuple[str, uuid.UUID | None]]) -> uuid.UUID | None:
    """The response with strictly more votes than the other and than tie/both_bad votes together."""
    votes = Counter(w for _, w in labels if w is not None)
    abstain = sum(1 for _, w in labels if w is None)
    ranked = votes.most_common()
    if not ranked:
        return None
    best, count = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    return best if count > runner_up and count > abstain else None


@dataclass(frozen=True)
class Side:
    """One response of a pair as the export needs it."""

    external_id: str | None
    model: str | None
    text: str


def build_row(
    *,
    style: str,
    pair_id: uuid.UUID,
    prompt: Any,
    prompt_external_id: str,
    chosen: Side,
    rejected: Side,
    similarity: float,
    strategy: str,
    num_labels: int,
    share: float | None,
    ds_posterior: float | None,
    reviewed: bool,
    completed_at: str,
) -> dict[str, Any]:
    """The export row in column order (``columns()``)."""
    epsilon, weight = smoothing_and_weight(share, reviewed)
    if style == "conversational":
        head: dict[str, Any] = {
            "prompt": conversation(prompt),
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
        }
    else:
        head = {"prompt": prompt_text(prompt), "chosen": chosen.text, "rejected": rejected.text}
    return {
        **head,
        "pair_id": str(pair_id),
        "prompt_external_id": prompt_external_id,
        "chosen_response_external_id": chosen.external_id,
        "rejected_response_external_id": rejected.external_id,
        "chosen_model": chosen.model,
        "rejected_model": rejected.model,
        "similarity": float(similarity),
        "strategy": strategy,
        "num_labels": num_labels,
        "agreement": share,
        "ds_posterior": ds_posterior,
        "reviewed": reviewed,
        "label_smoothing": epsilon,
        "weight": weight,
        "completed_at": completed_at,
    }
