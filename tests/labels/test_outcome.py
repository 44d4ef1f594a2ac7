"""The label-outcome rule, without a database."""

from __future__ import annotations

import math
import uuid
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.labels.outcome import (
    SIDES,
    Outcome,
    agreement,
    count,
    decide,
    pair_side,
    shown_winner,
    smoothing_and_weight,
)

LOW, HIGH = uuid.UUID(int=1), uuid.UUID(int=2)


class TestPairSide:
    @pytest.mark.parametrize(
        ("choice", "shown_first", "side"),
        [("a", LOW, "a"), ("b", LOW, "b"), ("a", HIGH, "b"), ("b", HIGH, "a"), ("tie", HIGH, "tie")],
    )
    def test_screen_choice_to_pair_side(self, choice: str, shown_first: uuid.UUID, side: str) -> None:
        assert pair_side(choice, shown_first, LOW) == side

    @given(choice=st.sampled_from(SIDES), a_first=st.booleans())
    def test_the_side_names_the_response_the_annotator_saw_win(self, choice: str, a_first: bool) -> None:
        first, second = (LOW, HIGH) if a_first else (HIGH, LOW)
        winner = shown_winner(choice, first, second)
        side = pair_side(choice, first, LOW)
        assert winner == {"a": LOW, "b": HIGH}.get(side)


class TestDecide:
    @pytest.mark.parametrize(
        ("counts", "result", "reason"),
        [
            ((1, 0, 0, 0), "a", None),
            ((0, 1, 0, 0), "b", None),
            ((2, 1, 0, 0), "a", None),
            ((1, 2, 0, 0), "b", None),
            ((1, 1, 0, 0), None, "tied_majority"),
            ((2, 2, 1, 0), None, "tied_majority"),
            ((2, 0, 1, 1), None, "tied_majority"),  # abstentions match the leader: [a, a, tie, both_bad]
            ((1, 0, 1, 0), None, "tied_majority"),
            ((0, 0, 1, 0), "tie", "tie"),
            ((1, 0, 2, 0), "tie", "tie"),
            ((0, 0, 0, 1), "both_bad", "both_bad"),
            ((0, 1, 0, 2), "both_bad", "both_bad"),
            ((0, 0, 1, 1), None, "tied_majority"),
            ((0, 0, 0, 0), None, None),
        ],
    )
    def test_labels_alone(
        self, counts: tuple[int, int, int, int], result: str | None, reason: str | None
    ) -> None:
        outcome = decide(counts, None, wanted=2)
        assert (outcome.result, outcome.reason) == (result, reason)
        assert outcome.winner == ({"a": 0, "b": 1}.get(result) if result else None)

    def test_a_verdict_overrides_the_labels(self) -> None:
        assert decide((3, 0, 0, 0), "b", 3).result == "b"
        assert decide((1, 1, 0, 0), "a", 3).result == "a"
        assert decide((3, 0, 0, 0), "tie", 3).reason == "tie"
        assert decide((0, 0, 0, 0), "both_bad", 3) == Outcome(
            "both_bad", "both_bad", 0, True, True, None, 0.0, 1.0
        )

    def test_completed_means_all_wanted_labels_or_a_verdict(self) -> None:
        assert not decide((1, 0, 0, 0), None, 2).completed
        assert decide((1, 1, 0, 0), None, 2).completed
        assert decide((1, 0, 0, 0), "a", 2).completed
        assert decide((3, 0, 0, 0), None, 2).completed  # a requeued pair can have more than wanted


class TestAgreementAndSmoothing:
    def test_one_label_has_no_agreement_not_nan(self) -> None:
        assert agreement((1, 0, 0, 0), "a") is None
        assert smoothing_and_weight(None, reviewed=False) == (0.0, 1.0)

    def test_share_of_labels_with_the_result(self) -> None:
        assert agreement((2, 1, 0, 0), "a") == pytest.approx(2 / 3)
        assert agreement((3, 0, 1, 0), "a") == 0.75
        assert agreement((1, 0, 2, 0), "tie") == pytest.approx(2 / 3)
        assert agreement((1, 1, 0, 0), None) is None

    @pytest.mark.parametrize(
        ("share", "epsilon", "weight"),
        [(1.0, 0.0, 1.0), (0.75, 0.25, 0.5), (2 / 3, 0.333333, 0.333333), (0.5, 0.5, 0.0), (0.2, 0.5, 0.0)],
    )
    def test_cdpo_epsilon_is_one_minus_agreement_clipped(
        self, share: float, epsilon: float, weight: float
    ) -> None:
        assert smoothing_and_weight(share, reviewed=False) == (epsilon, weight)

    def test_a_reviewed_pair_is_taken_as_correct(self) -> None:
        assert smoothing_and_weight(0.25, reviewed=True) == (0.0, 1.0)

    def test_a_partial_pair_weighs_by_the_share_of_wanted_labels_in(self) -> None:
        one_of_two = decide((1, 0, 0, 0), None, wanted=2)
        assert (one_of_two.label_smoothing, one_of_two.weight) == (0.0, 0.5)
        two_of_three = decide((2, 0, 0, 0), None, wanted=3)
        assert two_of_three.weight == pytest.approx(2 / 3, abs=1e-6)

    def test_never_nan(self) -> None:
        for share in (None, 0.0, 0.5, 1.0):
            assert not any(math.isnan(v) for v in smoothing_and_weight(share, reviewed=False))


labels = st.lists(st.sampled_from(SIDES), max_size=9)
verdicts = st.sampled_from([None, *SIDES])


class TestProperties:
    @given(labels=labels, verdict=verdicts, wanted=st.integers(1, 5))
    def test_the_decision_is_a_function_of_the_multiset(
        self, labels: list[str], verdict: str | None, wanted: int
    ) -> None:
        assert decide(count(labels), verdict, wanted) == decide(count(sorted(labels)), verdict, wanted)

    @given(labels=labels, verdict=verdicts, wanted=st.integers(1, 5))
    def test_a_winner_has_a_strict_majority_over_everything_else(
        self, labels: list[str], verdict: str | None, wanted: int
    ) -> None:
        outcome = decide(count(labels), verdict, wanted)
        votes = Counter(labels)
        if verdict is None and outcome.result in ("a", "b"):
            other = "b" if outcome.result == "a" else "a"
            assert votes[outcome.result] > votes[other]
            assert votes[outcome.result] > votes["tie"] + votes["both_bad"]
        if verdict is not None:
            assert outcome.result == verdict
            assert outcome.reviewed
            assert outcome.completed
        assert (outcome.reason is None) == (outcome.result in ("a", "b") or (not labels and verdict is None))
        assert 0.0 <= outcome.label_smoothing <= 0.5
        assert 0.0 <= outcome.weight <= 1.0

    @given(labels=labels, swap=st.booleans())
    def test_swapping_the_screen_order_does_not_change_the_outcome(
        self, labels: list[str], swap: bool
    ) -> None:
        first = HIGH if swap else LOW
        sides = [pair_side(c, first, LOW) for c in labels]
        mirrored = [{"a": "b", "b": "a"}.get(c, c) for c in labels]
        assert count(sides) == count(pair_side(c, LOW if swap else HIGH, LOW) for c in mirrored)
