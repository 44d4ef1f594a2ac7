"""Fixtures for embedding tests: a tiny causal LM folder, built once per run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.embeddings.tiny_causal_lm import build_tiny_causal_lm


@pytest.fixture(scope="session")
def tiny_causal_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The absolute path of a tiny random Llama and its tokenizer (no modules.json: a causal LM folder)."""
    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-causal-lm"))
