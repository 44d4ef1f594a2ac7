"""One pair's outcome → its export row, or the reason it is left out. Pure functions, no database.

Who won is app/labels/outcome.py's decision (the rule every view uses); this module adds what only exports
need: the reasons a pair is left out, the columns, and each row's state digest for incremental exports.
Counts are indexed like ``CHOICES`` (pair sides: "a" / "b" name the pair's response_a / response_b).
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from app.labels import outcome
from app.labels.outcome import A, B, Outcome
from app.prompts.text import prompt_text  # TRL's standard format: one string (shared with embedding)

__all__ = [
    "A",
    "B",
    "CHOICES",
    "REASONS",
    "Side",
    "build_row",
    "columns",
    "conversation",
    "digest",
    "digest_head",
    "digest_with",
    "prompt_text",
]

CHOICES: tuple[str, ...] = outcome.SIDES

# Why a considered pair is not a row, in the order the checks run (the first that applies is counted).
REASONS: tuple[str, ...] = (
    "gold",  # a gold check on annotators, never training data
    "partial",  # not completed (fewer labels than annotations_per_pair, no verdict); include_partial keeps it
    "tied_majority",  # no response won and neither tie nor both_bad has the most labels (outcome.decide)
    "tie",  # the labels' (or the reviewer's) outcome is "tie"
    "both_bad",  # ... is "both_bad"
    "reviewed",  # filters.reviewed = "exclude"
    "not_reviewed",  # filters.reviewed = "only"
    "outside_labeled_range",  # completing label outside [labeled_after, labeled_before)
    "below_min_agreement",  # agreement below filters.min_agreement, or unknown (one label)
    "below_min_posterior",  # Dawid–Skene posterior below filters.min_posterior, or unknown
)

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
    "completed",
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


def conversation(prompt: Any) -> list[dict[str, str]]:
    """A prompt as chat messages: a string becomes one user turn; stored messages stay turns."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]


@dataclass(frozen=True)
class Side:
    """One response of a pair as the export needs it."""

    external_id: str | None
    model: str | None
    text: str


def digest(decided: Outcome, completed_at: str) -> int:
    """What an incremental export compares to tell a pair's row changed: its outcome (winner, labels,
    agreement, smoothing, weight, completeness) and completing label. Not the Dawid–Skene posterior, which
    every new label anywhere in the project moves: a row is re-sent when its own outcome changes."""
    # The bytes of json.dumps([result, labels, …, weight, completed_at], separators=(",", ":")), the outcome's
    # part made once per distinct outcome (a few dozen in a whole export).
    return digest_with(digest_head(decided), completed_at)


def digest_with(head: bytes, completed_at: str) -> int:
    """``digest`` from the outcome's part (``digest_head``) and the completing label's time."""
    blob = head + json.dumps(completed_at).encode() + b"]"
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")


def digest_tails(completed_at: list[str]) -> list[bytes]:
    """What ``digest_with`` appends to the head for each of many times (schemas.iso texts: digits, "-", ":",
    ".", "T", "Z", which JSON quotes as they are): ``digest_with(h, t) == blake2b(h + tail)``."""
    return [f'"{t}"]'.encode() for t in completed_at]


@functools.lru_cache(maxsize=4096)
def digest_head(decided: Outcome) -> bytes:
    key = [
        decided.result,
        decided.labels,
        decided.reviewed,
        decided.completed,
        decided.agreement,
        decided.label_smoothing,
        decided.weight,
    ]
    return json.dumps(key, separators=(",", ":")).encode()[:-1] + b","


def build_row(
    *,
    style: str,
    pair_id: uuid.UUID,
    prompt: Any,
    prompt_external_id: str,
    side_a: Side,
    side_b: Side,
    similarity: float,
    strategy: str,
    decided: Outcome,
    ds_posterior: float | None,
    completed_at: str,
) -> dict[str, Any]:
    """The export row of a pair a response won, in column order (``columns()``)."""
    if decided.winner == A:
        chosen, rejected = side_a, side_b
    elif decided.winner == B:
        chosen, rejected = side_b, side_a
    else:
        raise ValueError(f"pair {pair_id} has no winner ({decided.result}); it is not a row")
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
        "num_labels": decided.labels,
        "completed": decided.completed,
        "agreement": decided.agreement,
        "ds_posterior": ds_posterior,
        "reviewed": decided.reviewed,
        "label_smoothing": decided.label_smoothing,
        "weight": decided.weight,
        "completed_at": completed_at,
    }
