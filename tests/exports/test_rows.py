"""Export rows from a pair's outcome, without a database (the outcome rule itself: tests/labels)."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from app.exports.rows import Side, build_row, columns, conversation, digest, prompt_text
from app.labels.outcome import decide

SIDE_A, SIDE_B = Side("r1", "m1", "first"), Side("r2", "m2", "second")


def row(counts: tuple[int, int, int, int], verdict: str | None = None, style: str = "standard") -> dict:
    return build_row(
        style=style,
        pair_id=uuid.UUID(int=1),
        prompt="Q",
        prompt_external_id="p1",
        side_a=SIDE_A,
        side_b=SIDE_B,
        similarity=0.5,
        strategy="dissimilar",
        decided=decide(counts, verdict, wanted=2),
        ds_posterior=None,
        completed_at="2026-01-01T00:00:00.000000Z",
    )


class TestBuildRow:
    def test_the_winner_is_chosen(self) -> None:
        assert (row((2, 0, 0, 0))["chosen"], row((2, 0, 0, 0))["rejected"]) == ("first", "second")
        assert (row((0, 2, 0, 0))["chosen"], row((1, 2, 0, 0))["rejected"]) == ("second", "first")
        assert row((2, 0, 0, 0), verdict="b")["chosen"] == "second"

    def test_columns_in_order(self) -> None:
        assert list(row((2, 0, 0, 0))) == columns()

    def test_outcome_columns(self) -> None:
        complete = row((2, 1, 0, 0))
        assert (complete["num_labels"], complete["completed"]) == (3, True)
        assert complete["agreement"] == pytest.approx(2 / 3)
        partial = row((1, 0, 0, 0))
        assert (partial["completed"], partial["agreement"], partial["weight"]) == (False, None, 0.5)

    @pytest.mark.parametrize("counts", [(1, 1, 0, 0), (0, 0, 2, 0), (0, 0, 0, 1)])
    def test_a_pair_no_response_won_is_no_row(self, counts: tuple[int, int, int, int]) -> None:
        with pytest.raises(ValueError, match="not a row"):
            row(counts)

    def test_conversational_row(self) -> None:
        made = row((0, 1, 0, 0), style="conversational")
        assert made["prompt"] == [{"role": "user", "content": "Q"}]
        assert made["chosen"] == [{"role": "assistant", "content": "second"}]
        assert made["rejected"] == [{"role": "assistant", "content": "first"}]
        assert (made["chosen_response_external_id"], made["rejected_model"]) == ("r2", "m1")


class TestDigest:
    def test_same_outcome_same_digest(self) -> None:
        when = "2026-01-01T00:00:00.000000Z"
        assert digest(decide((2, 0, 0, 0), None, 2), when) == digest(decide((2, 0, 0, 0), None, 2), when)

    @pytest.mark.parametrize(
        ("other", "when"),
        [
            (decide((2, 0, 0, 0), "b", 2), "t"),  # another winner
            (decide((3, 0, 0, 0), None, 2), "t"),  # another label count
            (decide((2, 0, 0, 0), "a", 2), "t"),  # reviewed now
            (decide((2, 0, 0, 0), None, 3), "t"),  # no longer complete (more labels wanted)
            (decide((2, 0, 0, 0), None, 2), "u"),  # another completing label
        ],
    )
    def test_any_change_of_outcome_changes_it(self, other: object, when: str) -> None:
        assert digest(decide((2, 0, 0, 0), None, 2), "t") != digest(other, when)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "counts", [(2, 0, 0, 0), (1, 1, 0, 0), (2, 1, 0, 0), (0, 0, 2, 0), (0, 3, 1, 1), (0, 0, 0, 0)]
    )
    @pytest.mark.parametrize("when", ["2026-01-01T00:00:00.000000Z", "t", 'odd "quoted" \u00e9'])
    def test_the_value_written_by_earlier_exports(self, counts: tuple[int, int, int, int], when: str) -> None:
        """State files of earlier exports hold digests an incremental export compares with: the value is
        blake2b-64 of the JSON list of the outcome's fields and the completing label's time, as it was."""
        for verdict in (None, "a", "tie"):
            decided = decide(counts, verdict, 2)
            key = [decided.result, decided.labels, decided.reviewed, decided.completed, decided.agreement,
                   decided.label_smoothing, decided.weight, when]  # fmt: skip
            blob = json.dumps(key, separators=(",", ":")).encode()
            expected = int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")
            assert digest(decided, when) == expected


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


class TestPromptText:
    def test_messages_become_a_transcript(self) -> None:
        text = prompt_text([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
        assert text == "User: Hi\n\nAssistant: Hello"
