"""Synthetic simulator inputs with a planted preference: no embedding model needed."""

from __future__ import annotations

import numpy as np

from app.simulation.inputs import Prompt, Response, SimulationInput


def planted(
    prompts: int = 200, responses: int = 4, dim: int = 16, seed: int = 1, levels: int | None = None
) -> tuple[SimulationInput, np.ndarray]:
    """Random response vectors whose score is their projection on one hidden direction (rounded to
    ``levels`` steps per unit when given, which makes ties), and the vectors in ``texts()`` order."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    vectors = rng.normal(size=(prompts * responses, dim))
    scores = vectors / np.linalg.norm(vectors, axis=1, keepdims=True) @ direction
    if levels is not None:
        scores = np.round(scores * levels) / levels
    records = tuple(
        Prompt(
            f"p{p}",
            f"prompt {p}",
            tuple(
                Response(f"r{k}", f"response {p}-{k}", float(scores[p * responses + k]))
                for k in range(responses)
            ),
            p + 1,
        )
        for p in range(prompts)
    )
    return SimulationInput("responses", records), vectors
