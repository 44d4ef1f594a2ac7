"""A project's model name chooses how its vectors are made: ONNX Runtime fp32 / int8, seqN, static."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import DEFAULT_EMBEDDING_MODEL, get_settings
from app.embeddings.embedder import (
    Embedder,
    ModelSpec,
    StaticEmbedder,
    check_model_name,
    get_embedder,
    parse_model_name,
)
from tests.e2e.pipeline import load_items

MINI = DEFAULT_EMBEDDING_MODEL


def texts() -> list[str]:
    answers = [r if isinstance(r, str) else r["text"] for item in load_items()[:3] for r in item["responses"]]
    return [*answers, "Short one.", "ok"]


class TestNames:
    @pytest.mark.parametrize(
        ("name", "spec", "canonical"),
        [
            (MINI, ModelSpec(MINI), MINI),
            (f"{MINI}@onnx", ModelSpec(MINI, "onnx"), f"{MINI}@onnx"),
            (f"{MINI}@seq128+onnx-int8", ModelSpec(MINI, "onnx-int8", 128), f"{MINI}@onnx-int8+seq128"),
            (f"{MINI}@static", ModelSpec(MINI, "static"), f"{MINI}@static"),
            (f"{MINI}@torch+seq64", ModelSpec(MINI, "torch", 64), f"{MINI}@seq64"),
            ("/models/a@b", ModelSpec("/models/a@b"), "/models/a@b"),  # not options: part of the folder name
        ],
    )
    def test_parse_and_canonical_name(self, name: str, spec: ModelSpec, canonical: str) -> None:
        assert parse_model_name(name) == spec
        assert str(spec) == canonical

    def test_check_returns_the_canonical_name(self) -> None:
        assert check_model_name(f"{MINI}@seq128+onnx") == f"{MINI}@onnx+seq128"

    @pytest.mark.parametrize(
        ("name", "says"),
        [
            (f"{MINI}@onnx+static", "at most one backend"),
            (f"{MINI}@seq64+seq32", "at most one backend and one seqN"),
            ("gpt2@onnx", "local path"),
        ],
    )
    def test_bad_options_are_refused(self, name: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            check_model_name(name)

    def test_a_causal_lm_takes_no_onnx_or_static(self, tiny_causal_lm: Path) -> None:
        assert check_model_name(f"{tiny_causal_lm}@seq8") == f"{tiny_causal_lm}@seq8"
        with pytest.raises(ValueError, match="not causal LMs"):
            check_model_name(f"{tiny_causal_lm}@onnx")

    def test_a_project_stores_the_canonical_name_and_422_names_the_field(self, client: Any) -> None:
        made = client.post(
            "/v1/projects", json={"name": "fast", "embedding_model": f"{MINI}@seq128+onnx-int8"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["embedding_model"] == f"{MINI}@onnx-int8+seq128"
        bad = client.post("/v1/projects", json={"name": "bad", "embedding_model": f"{MINI}@onnx+static"})
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["body.embedding_model"]


@pytest.fixture
def cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.getbasetemp() / "model-cache"  # one export per test session
    monkeypatch.setattr(get_settings(), "embedding_cache_dir", folder)
    return folder


def cosines(a: Any, b: Any) -> Any:
    return np.sum(np.asarray(a) * np.asarray(b), axis=1)


@pytest.mark.embedding
class TestBackends:
    def test_onnx_fp32_gives_the_torch_vectors(self, cache_dir: Path) -> None:
        torch_vectors = get_embedder(MINI).encode(texts())
        onnx = Embedder(f"{MINI}@onnx")
        assert onnx.onnx is not None
        encoded = onnx.encode(texts())
        assert cosines(encoded.vectors, torch_vectors.vectors).min() > 0.99999
        assert encoded.token_counts == torch_vectors.token_counts
        assert list(cache_dir.glob("onnx-*/model.onnx"))

    def test_onnx_int8_is_close_but_not_equal(self, cache_dir: Path) -> None:
        reference = get_embedder(MINI).encode(texts()).vectors
        int8 = Embedder(f"{MINI}@onnx-int8").encode(texts()).vectors
        similarity = cosines(int8, reference)
        assert 0.85 < similarity.mean() < 0.9999  # quantized: near the fp32 vectors, not the same
        np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)

    def test_seq_n_reads_n_tokens_and_counts_the_whole_text(self) -> None:
        long = " ".join(["token"] * 300)
        short = Embedder(f"{MINI}@seq32")
        assert short.max_seq_length == 32
        encoded = short.encode([long, "ok"])
        assert encoded.token_counts[0] == 302
        assert encoded.max_seq_length == 32
        # The same as the packaged model told to stop at 32 tokens.
        full = get_embedder(MINI)
        cut = full.model.tokenizer([long], truncation=True, max_length=32)["input_ids"][0]
        assert short.tokenize([long]).ids[0] == list(cut)
        assert float(cosines(encoded.vectors[:1], full.encode([long]).vectors)[0]) < 0.9999


class TestStaticEmbedder:
    def test_vectors_are_model2vecs_own(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A small static model over the packaged tokenizer (distilling the real one takes minutes; the
        # benchmark, bench/backends.py, does that): the embedder must give what model2vec gives for it.
        from model2vec import StaticModel
        from tokenizers import Tokenizer

        from app.embeddings import backends
        from app.embeddings.embedder import resolve_model_path

        tokenizer = Tokenizer.from_file(str(Path(resolve_model_path(MINI)) / "tokenizer.json"))
        table = np.random.default_rng(3).normal(size=(tokenizer.get_vocab_size(), 16)).astype(np.float32)
        model = StaticModel(vectors=table, tokenizer=tokenizer, normalize=True)
        monkeypatch.setattr(backends, "static_model", lambda spec, path: model)
        embedder = StaticEmbedder(f"{MINI}@static")
        sample = texts()
        encoded = embedder.encode(sample)
        assert cosines(encoded.vectors, model.encode(sample)).min() > 0.9999
        direct = [
            len([t for t in e.ids if t != model.unk_token_id])
            for e in tokenizer.encode_batch(sample, add_special_tokens=False)
        ]
        assert encoded.token_counts == direct
