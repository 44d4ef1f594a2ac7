"""The winner rule, agreement and the suggested label smoothing, without a database."""

from __future__ import annotations

import math

import pytest

from app.exports.rows import A, B, Side, agreement, build_row, conversation, decide, smoothing_and_weight


class TestDecide:
    @pytest.mark.parametrize(
        ("counts", "expected"),
        [
            ((1, 0, 0, 0), (A, None)),
            ((0, 1, 0, 0), (B, None)),
            ((2, 1, 0, 0), (A, None)),
            ((1, 2, 0, 0), (B, None)),
            ((1, 1, 0, 0), (None, "tied_majority")),
            ((2, 2, 1, 0), (None, "tied_majority")),
            ((2, 0, 1, 1), (None, "tied_majority")),  # abstentions match the leader
            ((1, 0, 1, 0), (None, "tied_majority")),
            ((0, 0, 1, 0), (None, "tie")),
            ((1, 0, 2, 0), (None, "tie")),
            ((0, 0, 0, 1), (None, "both_bad")),
            ((0, 1, 0, 2), (None, "both_bad")),
            ((0, 0, 1, 1), (None, "tied_majority")),
        ],
    )
    def test_labels_alone(
        self, counts: tuple[int, int, int, int], expected: tuple[int | None, str | None]
    ) -> None:
        assert decide(counts, None) == expected

    def test_a_verdict_overrides_the_labels(self) -> None:
        assert decide((3, 0, 0, 0), "b") == (B, None)
        assert decide((1, 1, 0, 0), "a") == (A, None)
        assert decide((3, 0, 0, 0), "tie") == (None, "tie")
        assert decide((3, 0, 0, 0), "both_bad") == (None, "both_bad")


class TestAgreementAndSmoothing:
    def test_one_label_has_no_agreement_not_nan(self) -> None:
        assert agreement((1, 0, 0, 0), A) is None
        assert smoothing_and_weight(None, reviewed=False) == (0.0, 1.0)

    def test_share_of_labels_with_the_winner(self) -> None:
        assert agreement((2, 1, 0, 0), A) == pytest.approx(2 / 3)
        assert agreement((3, 0, 1, 0), A) == 0.75
        assert agreement((2, 0, 0, 0), A) == 1.0

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

    def test_never_nan(self) -> None:
        for share in (None, 0.0, 0.5, 1.0):
            assert not any(math.isnan(v) for v in smoothing_and_weight(share, reviewed=False))


class TestConversation:
    def test_a_string_prompt_is_one_user_turn(self) -> None:
        assert conversation("Hi") == [{"role": "user", "content": "Hi"}]

    def test_stored_messages_stay_turns(self) -> None:
        turns = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye?"},
        ]
        assert conversation(turns) == turns

    def test_conversational_row(self) -> None:
        row = build_row(
            style="conversational",
            pair_id=__import__("uuid").UUID(int=1),
            prompt="Q",
            prompt_external_id="p1",
            chosen=Side("r1", "m1", "yes"),
            rejected=Side("r2", "m2", "no"),
            similarity=0.5,
            strategy="dissimilar",
            num_labels=1,
            share=None,
            ds_posterior=None,
            reviewed=False,
            completed_at="2026-01-01T00:00:00.000000Z",
        )
        assert row["prompt"] == [{"role": "user", "content": "Q"}]
        assert row["chosen"] == [{"role": "assistant", "content": "yes"}]
        assert row["rejected"] == [{"role": "assistant", "content": "no"}]
        assert (row["chosen_response_external_id"], row["rejected_model"]) == ("r1", "m2")
