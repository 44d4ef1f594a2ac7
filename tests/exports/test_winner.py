"""Which response wins a pair, given its labels."""

from __future__ import annotations

import uuid

from app.exports.service import prompt_text, winner_of

A, B = uuid.uuid4(), uuid.uuid4()


class TestWinnerOf:
    def test_single_vote_wins(self) -> None:
        assert winner_of([("a", A)]) == A

    def test_tie_and_both_bad_have_no_winner(self) -> None:
        assert winner_of([("tie", None)]) is None
        assert winner_of([("both_bad", None)]) is None

    def test_split_vote_has_no_winner(self) -> None:
        assert winner_of([("a", A), ("b", B)]) is None

    def test_majority_wins(self) -> None:
        assert winner_of([("a", A), ("b", B), ("a", A)]) == A

    def test_abstentions_outweighing_the_winner_leave_no_winner(self) -> None:
        assert winner_of([("a", A), ("tie", None), ("both_bad", None)]) is None


class TestPromptText:
    def test_messages_become_a_transcript(self) -> None:
        text = prompt_text([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}])
        assert text == "User: Hi\n\nAssistant: Hello"
