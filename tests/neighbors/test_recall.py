"""HNSW recall on real MiniLM vectors: recall@10 ≥ 0.98 against brute force at the default ef (100)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.config import DEFAULT_EMBEDDING_MODEL, Settings
from app.embeddings.embedder import get_embedder
from app.neighbors.index import IndexKind, VectorIndex, load_newest, write_version
from tests.neighbors.sentences import real_sentences

pytestmark = pytest.mark.embedding

K = 10


@pytest.fixture(scope="module")
def minilm_vectors() -> npt.NDArray[np.float32]:
    """About 2,700 distinct real sentences embedded by all-MiniLM-L6-v2 (the service's default model)."""
    return get_embedder(DEFAULT_EMBEDDING_MODEL).encode(real_sentences()).vectors


def brute_force_top_k(vectors: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Each vector's k nearest others by cosine, computed independently of app.neighbors."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall_at_k(index: VectorIndex, vectors: npt.NDArray[np.float32], truth: npt.NDArray[np.int64]) -> float:
    """Mean share of the true k nearest others that the index returns (the query itself left out)."""
    labels, _ = index.search(vectors, K + 1, num_threads=2)
    hits = 0
    for row, found in enumerate(labels):
        others = [label for label in found.tolist() if label != row][:K]
        hits += len(set(others) & set(truth[row].tolist()))
    return hits / (len(vectors) * K)


def test_hnsw_recall_at_10_on_real_minilm_vectors(
    minilm_vectors: npt.NDArray[np.float32], tmp_path: Path
) -> None:
    ef = Settings().neighbors_ef_search
    assert ef >= 100
    assert len(minilm_vectors) > 2500
    truth = brute_force_top_k(minilm_vectors, K)
    # Threshold 0 forces the HNSW path even at this size.
    index = VectorIndex.build(minilm_vectors, hnsw_threshold=0, ef_search=ef)
    assert index.kind is IndexKind.HNSW
    assert recall_at_k(index, minilm_vectors, truth) >= 0.98
    # The same holds for the index as written to and read back from its versioned file.
    hashes = [f"{n:064x}" for n in range(len(minilm_vectors))]
    write_version(
        tmp_path, index, model="m", text_hashes=hashes, dups=np.empty(0), dups_floor=0.9, ef_search=ef
    )
    loaded = load_newest(tmp_path)
    assert loaded is not None
    assert loaded.index.kind is IndexKind.HNSW
    assert recall_at_k(loaded.index, minilm_vectors, truth) >= 0.98


def test_exact_index_matches_brute_force_on_real_vectors(minilm_vectors: npt.NDArray[np.float32]) -> None:
    truth = brute_force_top_k(minilm_vectors, K)
    index = VectorIndex.build(minilm_vectors, hnsw_threshold=len(minilm_vectors) + 1, ef_search=100)
    assert index.kind is IndexKind.EXACT
    _, sims = index.search(minilm_vectors, K + 1)
    unit = minilm_vectors / np.linalg.norm(minilm_vectors, axis=1, keepdims=True)
    expected = np.take_along_axis(unit @ unit.T, truth, axis=1)
    # Equal similarities at every rank; labels may differ only where two texts tie to float32 rounding.
    np.testing.assert_allclose(sims[:, 1:], expected, atol=1e-5)
    assert recall_at_k(index, minilm_vectors, truth) >= 0.9999
