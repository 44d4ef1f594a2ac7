"""`real-align simulate` end to end on a tiny file, and the embedding cache it relies on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app import cli
from app.simulation.vectors import CacheMismatch, Encoder, embed, read_cache, text_key, write_cache
from tests.simulation.synthetic import planted

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def write_input(tmp_path: Path, prompts: int = 60) -> tuple[Path, Path]:
    """A format-1 file with planted scores, and a cache holding every text's vector."""
    data, vectors = planted(prompts=prompts, levels=3)
    path = tmp_path / "tiny.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for p in data.prompts:
            responses = [
                {"external_id": r.external_id, "text": r.text, "score": r.score} for r in p.responses
            ]
            handle.write(
                json.dumps({"external_id": p.external_id, "prompt": p.text, "responses": responses}) + "\n"
            )
    cache = tmp_path / "cache.npz"
    write_cache(
        cache, MODEL, {text_key(t): v.astype(np.float32) for t, v in zip(data.texts(), vectors, strict=True)}
    )
    return path, cache


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to load the embedding model (the cache must answer)."""

    def refuse(name: str) -> None:
        raise AssertionError(f"the embedding model {name} was loaded")

    monkeypatch.setattr("app.embeddings.embedder.get_embedder", refuse)


@pytest.mark.usefixtures("no_model")
def test_simulate_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, cache = write_input(tmp_path)
    out = tmp_path / "out"
    argv = ["simulate", "--data", str(data), "--budget", "20,40", "--repeats", "2", "--every", "10"]
    argv += ["--round", "10", "--noise", "similarity", "--cache", str(cache), "--out", str(out), "--quiet"]
    assert cli.main([*argv, "--embedding-model", MODEL]) == 0
    printed = capsys.readouterr().out
    assert "labels to random's full-budget accuracy" in printed
    summary = json.loads((out / "simulation.json").read_text())
    assert summary["data"]["name"] == "tiny.jsonl"
    assert summary["data"]["prompts"] == 60
    assert summary["config"]["noise"]["name"] == "similarity"
    assert summary["config"]["noise"]["similarity_low"] < summary["config"]["noise"]["similarity_high"]
    assert summary["checkpoints"] == [10, 20, 30, 40]
    assert len(summary["strategies"]["active"]["accuracy"]["runs"]) == 2
    assert "## The premise" in (out / "simulation.md").read_text()
    for name in ("accuracy.png", "label_error.png", "labels_needed.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    # Deterministic for a seed: the same command writes the same JSON.
    first = (out / "simulation.json").read_bytes()
    assert cli.main([*argv, "--embedding-model", MODEL]) == 0
    assert (out / "simulation.json").read_bytes() == first


def test_a_bad_input_line_is_reported_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n')
    assert cli.main(["simulate", "--data", str(path), "--budget", "10", "--out", str(tmp_path)]) == 2
    assert f"{path}:2: missing field 'rejected'" in capsys.readouterr().err


@pytest.mark.usefixtures("no_model")
def test_a_budget_larger_than_the_data_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, cache = write_input(tmp_path, prompts=20)
    argv = ["simulate", "--data", str(data), "--budget", "50", "--cache", str(cache), "--out", str(tmp_path)]
    assert cli.main([*argv, "--embedding-model", MODEL, "--quiet"]) == 2
    assert "the full budget of 50 labels" in capsys.readouterr().err


class TestCache:
    def test_only_missing_texts_are_embedded_once(self, tmp_path: Path) -> None:
        calls: list[list[str]] = []

        def encoder() -> Encoder:
            def encode(texts: list[str]) -> np.ndarray:
                calls.append(texts)
                return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)

            return encode

        cache = tmp_path / "c.npz"
        got = embed(["a", "bb", "a"], "m", cache, encoder)
        assert calls == [["a", "bb"]]  # a repeated text is embedded once
        assert got.tolist() == [[1.0, 1.0], [2.0, 1.0], [1.0, 1.0]]
        again = embed(["bb", "ccc"], "m", cache, encoder)
        assert calls == [["a", "bb"], ["ccc"]]
        assert again.tolist() == [[2.0, 1.0], [3.0, 1.0]]
        assert set(read_cache(cache, "m")) == {text_key(t) for t in ("a", "bb", "ccc")}

    def test_a_warm_cache_never_builds_the_encoder(self, tmp_path: Path) -> None:
        cache = tmp_path / "c.npz"
        write_cache(cache, "m", {text_key("x"): np.ones(3, dtype=np.float32)})

        def encoder() -> Encoder:
            raise AssertionError("the encoder was built")

        assert embed(["x"], "m", cache, encoder).tolist() == [[1.0, 1.0, 1.0]]

    def test_another_models_cache_is_refused(self, tmp_path: Path) -> None:
        cache = tmp_path / "c.npz"
        write_cache(cache, "m", {text_key("x"): np.ones(3, dtype=np.float32)})
        with pytest.raises(CacheMismatch, match="holds embeddings of 'm', not 'other'"):
            read_cache(cache, "other")
