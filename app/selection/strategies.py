"""REAL pair selection, pure numpy: embeddings of one prompt's responses in, chosen pairs out.

The strategies follow the paper (arXiv 2409.17169) and its code:
- ``dissimilar`` ("easy", REAL's recommendation): the pair with the lowest cosine similarity;
- ``similar`` ("hard"): the pair with the highest cosine similarity;
- ``centroid``: 2-means on the L2-normalised embeddings, then the response nearest each centre;
- ``random``: a uniformly random pair, seeded so a rerun picks the same pair.

Priority (the queue hands out the highest first): ``dissimilar`` and ``centroid`` 1 − cos, ``similar``
1 + cos, ``random`` a seeded uniform draw in [0, 1). Ties in any score go to the lowest (i, j).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.projects.models import Strategy

FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class PairChoice:
    """Indices i < j into the candidate list, their cosine similarity, and the queue priority."""

    i: int
    j: int
    similarity: float
    priority: float


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any identifiers (the same across processes and machines)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def normalize(vectors: FloatArray) -> npt.NDArray[np.float64]:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)


def cosine_matrix(vectors: FloatArray) -> npt.NDArray[np.float64]:
    """The (k, k) matrix of pairwise cosine similarities."""
    unit = normalize(vectors)
    sims = unit @ unit.T
    return np.clip(sims, -1.0, 1.0)


def _lloyd(
    unit: npt.NDArray[np.float64], centres: npt.NDArray[np.float64], max_iter: int
) -> tuple[npt.NDArray[np.float64], float]:
    for _ in range(max_iter):
        dist = ((unit[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        assign = np.argmin(dist, axis=1)
        new = centres.copy()
        for c in range(2):
            members = unit[assign == c]
            if len(members):
                new[c] = members.mean(axis=0)
        if np.allclose(new, centres):
            break
        centres = new
    dist = ((unit[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return centres, float(dist.min(axis=1).sum())


def two_means(unit: npt.NDArray[np.float64], max_iter: int = 100) -> npt.NDArray[np.float64]:
    """2-means (Lloyd) with fixed initialisations, keeping the lowest inertia.

    Start s pairs response s with the response farthest from it; every s is tried (k is small), which
    avoids most of the poor local optima of a single start. Deterministic: ties keep the lowest s.
    """
    best: tuple[float, npt.NDArray[np.float64]] | None = None
    for start in range(len(unit)):
        far = int(np.argmax(((unit - unit[start]) ** 2).sum(axis=1)))
        centres, inertia = _lloyd(unit, np.stack([unit[start], unit[far]]), max_iter)
        if best is None or inertia < best[0] - 1e-12:
            best = (inertia, centres)
    assert best is not None
    return best[1]


def _centroid_pair(unit: npt.NDArray[np.float64]) -> tuple[int, int]:
    centres = two_means(unit)
    dist = ((unit[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    first = int(np.argmin(dist[:, 0]))
    order = np.argsort(dist[:, 1], kind="stable")
    # Both centres can be nearest the same response; the second centre then takes its next nearest.
    second = int(order[0]) if int(order[0]) != first else int(order[1])
    return (first, second) if first < second else (second, first)


def select_pairs(
    vectors: FloatArray, strategy: Strategy | str, n_pairs: int = 1, seed: int = 0
) -> list[PairChoice]:
    """Choose up to ``n_pairs`` distinct pairs among the rows of ``vectors`` (one prompt's responses)."""
    strategy = Strategy(strategy)
    k = len(vectors)
    if k < 2 or n_pairs < 1:
        return []
    sims = cosine_matrix(vectors)
    iu, ju = np.triu_indices(k, k=1)
    pair_sims = sims[iu, ju]
    rng = np.random.default_rng(seed)
    if strategy is Strategy.RANDOM:
        scores = rng.random(len(iu))
    elif strategy is Strategy.SIMILAR:
        scores = 1.0 + pair_sims
    else:
        scores = 1.0 - pair_sims
    # Highest score first; lexsort's last key is primary, and (i, j) break ties ascending.
    order = list(np.lexsort((ju, iu, -scores)))
    if strategy is Strategy.CENTROID:
        ci, cj = _centroid_pair(normalize(vectors))
        first = next(n for n in order if iu[n] == ci and ju[n] == cj)
        order.remove(first)
        order.insert(0, first)
    return [
        PairChoice(int(iu[n]), int(ju[n]), float(pair_sims[n]), float(scores[n])) for n in order[:n_pairs]
    ]
