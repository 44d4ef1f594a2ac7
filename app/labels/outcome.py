"""A pair's outcome from its labels: the one rule every view, the quality aggregates and the exports use.

Pure Python, no database and no HTTP. A label arrives in screen terms (``a`` / ``b``: the response shown
first / second, in an order randomised per assignment); ``pair_side`` turns it into pair terms (``a`` /
``b``: the pair's ``response_a`` / ``response_b``, the lower / higher response id). Everything downstream
counts pair sides.

The decision (``decide``): a reviewer's verdict decides when there is one. Otherwise a response wins when
it has strictly more labels than the other response *and* than ``tie`` and ``both_bad`` labels together;
with no winner the result is ``tie`` or ``both_bad`` when that outcome has strictly the most labels, else
the pair is undecided (reason ``tied_majority``: the two responses tie, or abstentions match or outnumber
the leader). So ``a, a, b`` → a; ``a, b`` → undecided; ``a, a, tie, both_bad`` → undecided; ``tie, tie,
a`` → tie.

A pair is **completed** when it has all the labels its project wants (``annotations_per_pair``) or a
reviewer's verdict.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

SIDES: tuple[str, ...] = ("a", "b", "tie", "both_bad")
A, B, TIE, BOTH_BAD = range(4)

Counts = tuple[int, int, int, int]
NO_LABELS: Counts = (0, 0, 0, 0)
Reason = Literal["tie", "both_bad", "tied_majority"]
Result = Literal["a", "b", "tie", "both_bad"]

# Why a pair has no winner, as exports name it; "tied_majority" is the undecided case.
NO_WINNER_REASONS: tuple[Reason, ...] = ("tied_majority", "tie", "both_bad")

# label_smoothing of a pair whose agreement is unknown (one label) or that a reviewer decided.
SINGLE_LABEL_SMOOTHING = 0.0
REVIEWED_SMOOTHING = 0.0
MAX_SMOOTHING = 0.5


def pair_side(choice: str, shown_first_response_id: uuid.UUID, response_a_id: uuid.UUID) -> str:
    """A label's choice in pair terms: "a" / "b" name the pair's response_a / response_b, whatever was
    shown first; "tie" and "both_bad" are the same in both terms."""
    if choice not in ("a", "b"):
        return choice
    a_shown_first = shown_first_response_id == response_a_id
    return "a" if (choice == "a") == a_shown_first else "b"


def shown_winner(
    choice: str, shown_first_response_id: uuid.UUID, shown_second_response_id: uuid.UUID
) -> uuid.UUID | None:
    """The response a label says won (None for tie and both_bad)."""
    if choice == "a":
        return shown_first_response_id
    if choice == "b":
        return shown_second_response_id
    return None


def count(sides: Iterable[str]) -> Counts:
    """How many labels chose each pair side, indexed like ``SIDES``."""
    counts = [0, 0, 0, 0]
    for side in sides:
        counts[SIDES.index(side)] += 1
    return counts[0], counts[1], counts[2], counts[3]


@dataclass(frozen=True)
class Outcome:
    """What a pair's labels (and verdict) decide.

    ``result``: "a" / "b" (that response won), "tie", "both_bad", or None (undecided, or no labels).
    ``reason``: why no response won ("tie", "both_bad", "tied_majority"); None when one did or no labels.
    ``agreement``: the share of the labels that chose ``result``; None with fewer than two labels or no
    result. ``label_smoothing`` and ``weight`` are the suggested cDPO ε and loss weight of a winner.
    """

    result: Result | None
    reason: Reason | None
    labels: int
    reviewed: bool
    completed: bool
    agreement: float | None
    label_smoothing: float
    weight: float

    @property
    def winner(self) -> int | None:
        """A or B when a response won, else None."""
        return SIDES.index(self.result) if self.result in ("a", "b") else None


_RESULTS: tuple[Result, ...] = ("a", "b", "tie", "both_bad")


def result_of(counts: Counts) -> Result | None:
    """What labels alone decide (no verdict): see the module docstring."""
    a, b, tie, both_bad = counts
    abstain = tie + both_bad
    if a > b and a > abstain:
        return "a"
    if b > a and b > abstain:
        return "b"
    ranked = sorted(range(4), key=lambda k: counts[k], reverse=True)
    if counts[ranked[0]] > counts[ranked[1]] and ranked[0] in (TIE, BOTH_BAD):
        return _RESULTS[ranked[0]]
    return None


def _result(counts: Counts, verdict: str | None) -> Result | None:
    if verdict is not None:
        return next((r for r in _RESULTS if r == verdict), None)
    return result_of(counts)


UNDECIDED = "undecided"


def stored(decided: Outcome) -> str | None:
    """The value of ``pair.outcome``: the result, "undecided" when labels or a verdict decide nothing, or
    None with neither."""
    if decided.result is not None:
        return decided.result
    return UNDECIDED if decided.labels or decided.reviewed else None


def agreement(counts: Counts, result: str | None) -> float | None:
    """Share of the labels that chose the result; None (never NaN) with fewer than two labels."""
    total = sum(counts)
    if total < 2 or result is None:
        return None
    return counts[SIDES.index(result)] / total


def smoothing_and_weight(share: float | None, reviewed: bool, evidence: float = 1.0) -> tuple[float, float]:
    """The suggested cDPO label_smoothing ε and a loss weight, from agreement (docs/exports.md).

    ε = clip(1 − agreement, 0, 0.5): the observed chance that one more label would have disagreed with the
    chosen response, as an estimate of the flip rate cDPO takes. weight = (1 − 2ε) · evidence: the
    majority's margin over a coin flip (1 for unanimous pairs, 0 when the labels are split evenly), scaled
    by the share of the wanted labels that are in (``evidence``, 1 for a completed pair). A reviewer's
    verdict is taken as correct (ε = 0, weight = 1). One label gives no evidence of disagreement: ε = 0
    (plain DPO, TRL's default label_smoothing).
    """
    if reviewed:
        return REVIEWED_SMOOTHING, 1.0
    epsilon = SINGLE_LABEL_SMOOTHING if share is None else min(MAX_SMOOTHING, max(0.0, 1.0 - share))
    return round(epsilon, 6), round((1.0 - 2.0 * epsilon) * evidence, 6)


def decide(counts: Counts, verdict: str | None, wanted: int) -> Outcome:
    """The pair's outcome from its label counts (pair sides), the reviewer's verdict (or None) and the
    number of labels its project wants."""
    result = _result(counts, verdict)
    labels = sum(counts)
    reviewed = verdict is not None
    reason: Reason | None = None
    if result == "tie" or result == "both_bad":
        reason = result
    elif result is None and (labels or reviewed):
        reason = "tied_majority"
    share = agreement(counts, result)
    completed = reviewed or labels >= wanted
    evidence = 1.0 if completed else labels / max(wanted, 1)
    epsilon, weight = smoothing_and_weight(share, reviewed, evidence)
    return Outcome(result, reason, labels, reviewed, completed, share, epsilon, weight)
