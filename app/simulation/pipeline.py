"""The simulator's steps from a validated input to its report files, shared by `real-align simulate` and the
simulation job (``POST /v1/simulations``), so both give the same output for the same input and parameters.

embed (``vectors.embed``, cached by text) → ``engine.Pool.build`` → ``engine.run`` → ``summarise`` (the
report's JSON, with the premise for scored responses) → ``write`` (Markdown, JSON, PNG plots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy.typing as npt

from app.simulation import engine, report
from app.simulation.annotators import ConstantNoise, NoiseModel, NoiseName, SimilarityNoise
from app.simulation.inputs import SimulationInput
from app.simulation.vectors import Encoder


def noise_model(
    name: NoiseName,
    *,
    epsilon: float,
    epsilon_min: float,
    epsilon_max: float,
    similarity_low: float | None,
    similarity_high: float | None,
) -> NoiseModel:
    """The named noise model with its parameters (the other model's parameters are ignored)."""
    if name == "constant":
        return ConstantNoise(epsilon)
    return SimilarityNoise(epsilon_min, epsilon_max, similarity_low, similarity_high)


def encoder_for(model: str) -> Callable[[], Encoder]:
    """A loader of the embedding model's encoder, for ``vectors.embed`` (called only if a text is missing)."""

    def encoder() -> Encoder:
        from app.embeddings.embedder import get_embedder

        embedder = get_embedder(model)
        return lambda texts: embedder.encode(texts).vectors

    return encoder


@dataclass(frozen=True)
class Source:
    """What the report says about its input: the file's name and sha256, and the embedding model."""

    name: str
    sha256: str
    embedding_model: str


def simulate(
    data: SimulationInput,
    vectors: npt.ArrayLike,
    config: engine.Config,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[engine.Pool, engine.SimulationResult]:
    """Every strategy over the repeats on the embedded input; ``progress(done, total)`` after each run."""
    pool = engine.Pool.build(data, vectors)
    return pool, engine.run(pool, config, progress)


def summarise(
    data: SimulationInput, pool: engine.Pool, result: engine.SimulationResult, source: Source
) -> dict[str, Any]:
    """The report's summary (``simulation.json``)."""
    return report.summarise(
        result,
        engine.tie_rate_by_similarity(pool) if data.format == "responses" else None,
        {
            "name": source.name,
            "sha256": source.sha256,
            "format": data.format,
            "prompts": len(data.prompts),
            "responses": len(data.texts()),
            "embedding_model": source.embedding_model,
        },
    )


def write(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """simulation.md, simulation.json and the plots (with matplotlib installed) in ``out_dir``."""
    title = f"{summary['data']['name']}, {summary['config']['noise']['name']} noise"
    return report.write(summary, out_dir, title)
