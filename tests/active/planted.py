"""Planted vectors for reward-model tests: a response's stored embedding, drawn at random."""

from __future__ import annotations

from typing import Any

import numpy as np

from app.embeddings.codec import to_bytes
from app.embeddings.models import Embedding
from app.prompts.models import Response


def store_random_vector(
    session: Any, model: str, response: Response, rng: np.random.Generator, dim: int
) -> np.ndarray:
    """Give the response's text a random stored embedding under `model`; returns the vector."""
    vector = rng.normal(size=dim)
    session.add(
        Embedding(
            model=model, text_sha256=response.text_sha256, dim=dim, vector=to_bytes(vector), token_count=4
        )
    )
    return vector
