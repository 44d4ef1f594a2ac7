"""The simulator's input formats: both load, and every refusal names the file and the line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from app.simulation.inputs import InputError, load

GOOD_1 = {
    "external_id": "q1",
    "prompt": "Say hi",
    "responses": [
        {"external_id": "a", "text": "Hi!", "model": "m1", "score": 1},
        {"external_id": "b", "text": "Hello.", "score": 0.5},
        {"external_id": "c", "text": "No.", "model": None, "score": 0},
    ],
}
GOOD_2 = {"prompt": "\n\nHuman: hi", "chosen": "Hello!", "rejected": "Go away."}


def write(tmp_path: Path, *lines: object, name: str = "in.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


class TestFormats:
    def test_format_1_keeps_every_response_and_score(self, tmp_path: Path) -> None:
        second = {**GOOD_1, "external_id": "q2", "metadata": {"any": ["thing"]}}
        data = load(write(tmp_path, GOOD_1, "", second))
        assert data.format == "responses"
        assert [p.external_id for p in data.prompts] == ["q1", "q2"]
        assert [p.line for p in data.prompts] == [1, 3]  # the blank line is skipped, not renumbered
        first = data.prompts[0]
        assert [(r.external_id, r.text, r.score, r.model) for r in first.responses] == [
            ("a", "Hi!", 1.0, "m1"),
            ("b", "Hello.", 0.5, None),
            ("c", "No.", 0.0, None),
        ]
        assert data.max_responses == 3
        assert data.texts() == ["Hi!", "Hello.", "No."] * 2

    def test_format_2_is_chosen_over_rejected(self, tmp_path: Path) -> None:
        data = load(write(tmp_path, GOOD_2, {**GOOD_2, "external_id": "hh-7"}))
        assert data.format == "pairwise"
        assert [p.external_id for p in data.prompts] == ["line-1", "hh-7"]
        chosen, rejected = data.prompts[0].responses
        assert (chosen.text, chosen.score, rejected.text, rejected.score) == ("Hello!", 1.0, "Go away.", 0.0)

    def test_gzip_reads_the_same_records(self, tmp_path: Path) -> None:
        plain = write(tmp_path, GOOD_1)
        packed = tmp_path / "in.jsonl.gz"
        packed.write_bytes(gzip.compress(plain.read_bytes()))
        assert load(packed) == load(plain)

    def test_the_committed_slices_load(self) -> None:
        root = Path(__file__).resolve().parents[2] / "data" / "simulation"
        alpaca = load(root / "alpaca_eval_500x8.jsonl.gz")
        hh = load(root / "hh_rlhf_harmless_test.jsonl.gz")
        assert (alpaca.format, len(alpaca.prompts), alpaca.max_responses) == ("responses", 500, 8)
        assert {r.score for p in alpaca.prompts for r in p.responses} <= {0.0, 0.5, 1.0}
        assert (hh.format, hh.max_responses) == ("pairwise", 2)
        assert len(hh.prompts) > 2000


def response(**change: object) -> dict[str, object]:
    base: dict[str, object] = {"external_id": "x", "text": "t", "score": 1}
    base.update(change)
    return {k: v for k, v in base.items() if v is not ...}


def record(*responses: dict[str, object], **change: object) -> dict[str, object]:
    base: dict[str, object] = {
        "external_id": "bad",
        "prompt": "p",
        "responses": list(responses) or [response(external_id="x"), response(external_id="y")],
    }
    base.update(change)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"external_id": "bad", "prompt": ', "not JSON"),
        ("[1, 2]", "must be a JSON object, got list"),
        ('{"prompt": "p"}', "neither format"),
        (record(prompt=...), "missing field 'prompt'"),
        (record(prompt=3), "field 'prompt' must be a string, got int"),
        (record(prompt="  "), "field 'prompt' is empty"),
        (record(responses="ab"), "field 'responses' must be a list, got str"),
        (record(response()), "at least 2 responses, got 1"),
        (record(response(external_id="x"), "text"), "responses[1] must be an object, got str"),
        (record(response(external_id="x"), response(external_id="y", score=...)), "missing field 'score'"),
        (
            record(response(external_id="x"), response(external_id="y", score="1")),
            "must be a number, got str",
        ),
        (
            record(response(external_id="x"), response(external_id="y", score=True)),
            "must be a number, got bool",
        ),
        (record(response(external_id="x"), response(external_id="y", text=...)), "missing field 'text'"),
        (record(response(external_id="x"), response(external_id="x")), "duplicate response external_id"),
        (record(response(external_id="x"), response(external_id="y", scores=1)), "unknown field 'scores'"),
        (record(extra=1), "unknown field 'extra'"),
        ({"prompt": "p", "chosen": "c"}, "missing field 'rejected'"),
        ({"prompt": "p", "chosen": "c", "rejected": 5}, "field 'rejected' must be a string, got int"),
        (GOOD_2, "a pairwise record in a responses file (line 1 set the format)"),
        ({**GOOD_1}, "duplicate external_id 'q1' (first on line 1)"),
    ],
)
def test_a_bad_record_is_refused_with_its_line(tmp_path: Path, bad: object, message: str) -> None:
    # A pairwise record's own faults show in a pairwise file; in a responses file the format is the fault.
    first = GOOD_2 if "'rejected'" in message else GOOD_1
    path = write(tmp_path, first, "", bad, first | {"external_id": "later"})
    with pytest.raises(InputError) as caught:
        load(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)


def test_a_non_finite_score_is_refused(tmp_path: Path) -> None:
    # json.dumps writes NaN as Python's json module reads it (not standard JSON, but json.loads accepts it).
    nan = record(response(external_id="a", score=float("nan")), response(external_id="b"))
    path = write(tmp_path, nan)
    with pytest.raises(InputError, match=r":1: field 'score' in responses\[0\] must be finite"):
        load(path)


def test_bytes_that_are_not_utf8_are_refused_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(json.dumps(GOOD_2).encode() + b"\n\xff\xfe\n")
    with pytest.raises(InputError, match=r":2: not UTF-8"):
        load(path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "", "  ")
    with pytest.raises(InputError, match="no records"):
        load(path)
