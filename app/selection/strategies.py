"""REAL pair selection, pure numpy and batched: many prompts' response embeddings in, chosen pairs out.

The strategies follow the paper (arXiv 2409.17169) and its code:
- ``dissimilar`` ("easy", REAL's recommendation): the pair with the lowest cosine similarity;
- ``similar`` ("hard"): the pair with the highest cosine similarity;
- ``centroid``: 2-means on the L2-normalised embeddings (the global optimum up to 16 responses), then the
  response nearest each centre;
- ``random``: a uniformly random pair, seeded so a rerun picks the same pair;
- ``active``: ``dissimilar``'s priority scaled by the project's reward model (uncertainty) and novelty against
  labelled responses, computed by the caller (app/active/acquisition.py); with no model, ``dissimilar``.

Scores, highest first, double as queue priorities: ``dissimilar`` and ``centroid`` 1 − cos, ``similar``
1 + cos, ``random`` a seeded uniform draw in [0, 1). ``pairs_per_prompt`` > 1 takes the next best pairs (for
``centroid``: the centroid pair first, then by 1 − cos). Ties go to the lowest (i, j).

Before pairing, responses whose cosine similarity to an earlier (kept) response is at least the
near-duplicate threshold are collapsed, so no pair of near-identical texts is ever chosen.

Selection is exact: every pair of every prompt is scored (k ≤ a few dozen candidates per prompt).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.projects.models import Strategy

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# Equal within these is a tie, settled by a fixed rule rather than by float noise (squared distances ≤ 4).
_INERTIA_TOLERANCE = 1e-9
_DISTANCE_TOLERANCE = 1e-9
# 2^(k-1) bipartitions are scored exactly up to this many responses (32,768 at 16); Lloyd above it.
_MAX_EXACT_RESPONSES = 16
_MAX_LLOYD_ITERATIONS = 100
# Prompts are scored in blocks whose (prompts × labellings) arrays stay in cache: measured 2-3× faster than
# 16 MB blocks at 8 responses.
_BLOCK_ELEMENTS = 1 << 16


@dataclass(frozen=True)
class PairChoice:
    """Indices i < j into the candidate list, their cosine similarity, and the queue priority."""

    i: int
    j: int
    similarity: float
    priority: float


@dataclass(frozen=True)
class BatchSelection:
    """Chosen pairs for P prompts: (P, n) arrays, -1 / NaN where a prompt has fewer pairs."""

    i: IntArray
    j: IntArray
    similarity: npt.NDArray[np.float64]
    priority: npt.NDArray[np.float64]
    kept: BoolArray  # (P, k): the responses left after collapsing near-duplicates

    def choices(self, p: int) -> list[PairChoice]:
        """Prompt p's pairs, best first."""
        return [
            PairChoice(int(a), int(b), float(s), float(q))
            for a, b, s, q in zip(self.i[p], self.j[p], self.similarity[p], self.priority[p], strict=True)
            if a >= 0
        ]


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any identifiers (the same across processes and machines)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def normalize(vectors: FloatArray) -> npt.NDArray[np.float64]:
    """Rows (last axis) scaled to unit L2 norm (zero rows stay zero)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return unit


def cosine_matrix(vectors: FloatArray) -> npt.NDArray[np.float64]:
    """The (..., k, k) matrix of pairwise cosine similarities."""
    unit = normalize(vectors)
    return np.clip(unit @ np.swapaxes(unit, -1, -2), -1.0, 1.0)


def uniform_hash(seeds: npt.NDArray[np.uint64], counters: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Uniform [0, 1) draws from (seed, counter) by SplitMix64: vectorised, the same on every machine."""
    with np.errstate(over="ignore"):
        z = seeds ^ (counters * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    draws: npt.NDArray[np.float64] = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return draws


def similarities(vectors: FloatArray, mask: BoolArray) -> npt.NDArray[np.float64]:
    """(P, k, k) cosine similarities of padded (P, k, d) embeddings (rows outside ``mask`` are zero)."""
    unit = normalize(np.asarray(vectors, dtype=np.float64)) * mask[:, :, None]
    return np.clip(unit @ np.swapaxes(unit, 1, 2), -1.0, 1.0)


def near_duplicate_of(sims: FloatArray, mask: BoolArray, threshold: float | None) -> IntArray:
    """(P, k): the earlier kept response each response is at least `threshold`-similar to (the first such),
    or -1 for a response that is kept or absent (greedy, in order)."""
    duplicate_of = np.full(mask.shape, -1, dtype=np.int64)
    if threshold is None:
        return duplicate_of
    kept = mask.copy()
    for i in range(1, sims.shape[-1]):
        near = kept[:, :i] & (sims[:, i, :i] >= threshold)
        found = near.any(axis=1) & mask[:, i]
        duplicate_of[:, i] = np.where(found, np.argmax(near, axis=1), -1)
        kept[:, i] &= ~found
    return duplicate_of


def collapse_near_duplicates(sims: FloatArray, mask: BoolArray, threshold: float | None) -> BoolArray:
    """Keep a response unless it is at least `threshold`-similar to an earlier kept one (greedy, in order)."""
    return mask & (near_duplicate_of(sims, mask, threshold) < 0)


def _prompt_blocks(p_count: int, per_prompt: int) -> list[slice]:
    """Slices of prompts whose working arrays hold about _BLOCK_ELEMENTS floats each."""
    size = max(1, _BLOCK_ELEMENTS // max(per_prompt, 1))
    return [slice(start, min(start + size, p_count)) for start in range(0, p_count, size)]


def _bipartition_labels(k: int) -> npt.NDArray[np.float64]:
    """Every 2-labelling of k positions with position 0 labelled 0, in lexicographic order: (2^(k-1), k)."""
    codes = np.arange(1 << (k - 1), dtype=np.int64)[:, None]
    return ((codes >> (k - 1 - np.arange(k, dtype=np.int64))[None, :]) & 1).astype(np.float64)


def _exact_bipartition(gram: FloatArray, mask: BoolArray) -> BoolArray:
    """The 2-means partition of least inertia among all bipartitions of each prompt's valid responses.

    The inertia of clusters A, B is Σ_i G_ii − S_A/|A| − S_B/|B| with S_C = Σ_{i,j∈C} G_ij, and
    S_A = Σ_ij G_ij − 2·Σ_{i∈B} Σ_j G_ij + S_B, so scoring every labelling takes matrix products over the
    Gram matrices, with no Lloyd iterations and so no local optima. Labellings run in lexicographic order with
    position 0 labelled 0, and the first within _INERTIA_TOLERANCE of the least wins: among equal-inertia
    partitions, the one that puts the earliest responses in the first response's cluster. Invalid positions
    carry no weight: labellings that differ only there score the same, and the rule holds for the valid ones.
    """
    p_count, k, _ = gram.shape
    labels = _bipartition_labels(k)  # (B, k): 1 = the second cluster
    iu, ju = np.triu_indices(k, k=1)
    both = labels[:, iu] * labels[:, ju]  # (B, k(k-1)/2): the pair is inside the second cluster
    valid = mask.astype(np.float64)
    best = np.zeros(p_count, dtype=np.int64)
    for block in _prompt_blocks(p_count, len(labels)):
        weights = valid[block]
        masked = gram[block] * (weights[:, :, None] * weights[:, None, :])
        diag = np.diagonal(masked, axis1=1, axis2=2)
        rows = masked.sum(axis=2)
        # einsum, not @: BLAS threads these many small products, and on a busy machine each threaded call
        # waits for a free core (measured 1.2 s against 0.2 s per 20,000 prompts beside two busy processes).
        size_b, diag_b, rows_b = np.einsum("spk,lk->spl", np.stack([weights, diag, rows]), labels)
        within_b = diag_b + 2.0 * np.einsum("pq,lq->pl", masked[:, iu, ju], both)
        within_a = rows.sum(axis=1, keepdims=True) - 2.0 * rows_b + within_b
        size_a = weights.sum(axis=1, keepdims=True) - size_b
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.where((size_a > 0) & (size_b > 0), within_a / size_a + within_b / size_b, -np.inf)
        inertia = diag.sum(axis=1, keepdims=True) - spread
        least = inertia.min(axis=1, keepdims=True)
        best[block] = np.argmax(inertia <= least + _INERTIA_TOLERANCE, axis=1)
    return labels[best].astype(bool) & mask


def _lloyd_bipartition(gram: FloatArray, mask: BoolArray) -> BoolArray:
    """Batched Lloyd 2-means from k starts (response s and the response farthest from it), least inertia wins.

    For prompts too large to enumerate: it avoids most poor local optima of a single start, but unlike the
    exact search it can still stop at one. The first start within _INERTIA_TOLERANCE of the least wins; an
    emptied cluster keeps its previous centre.
    """
    p_count, k, _ = gram.shape
    labels = np.zeros((p_count, k), dtype=bool)
    for block in _prompt_blocks(p_count, 4 * k * k):
        labels[block] = _lloyd_block(gram[block], mask[block])
    return labels


def _lloyd_block(gram: FloatArray, mask: BoolArray) -> BoolArray:
    p_count, k, _ = gram.shape
    starts = np.arange(k)
    far_gram = np.where(mask[:, None, :], gram, np.inf)
    far = np.argmin(far_gram, axis=2)  # (P, S): the response least similar to start s
    weights = np.zeros((p_count, k, 2, k))
    prompt_idx = np.arange(p_count)[:, None]
    weights[prompt_idx, starts[None, :], 0, starts[None, :]] = 1.0
    weights[prompt_idx, starts[None, :], 1, far] = 1.0
    valid = mask[:, None, None, :]

    def distances(w: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        counts = w.sum(axis=3, keepdims=True)  # (P, S, 2, 1)
        xc = (w.reshape(p_count, k * 2, k) @ gram).reshape(p_count, k, 2, k) / counts  # mean_j G_ij
        cc = (xc * w).sum(axis=3, keepdims=True) / counts
        out: npt.NDArray[np.float64] = 1.0 - 2.0 * xc + cc  # (P, S, 2, k)
        return out

    for _ in range(_MAX_LLOYD_ITERATIONS):
        dist = distances(weights)
        to_second = dist[:, :, 1, :] < dist[:, :, 0, :]
        new = np.stack([~to_second, to_second], axis=2) & valid
        empty = ~new.any(axis=3, keepdims=True)
        new_weights = np.where(empty, weights, new.astype(np.float64))
        if np.array_equal(new_weights, weights):
            break
        weights = new_weights
    dist = distances(weights)
    inertia = np.where(mask[:, None, :], dist.min(axis=2), 0.0).sum(axis=2)  # (P, S)
    inertia = np.where(mask, inertia, np.inf)  # invalid responses are no start
    best = np.argmax(inertia <= inertia.min(axis=1, keepdims=True) + _INERTIA_TOLERANCE, axis=1)
    chosen = dist[np.arange(p_count), best]  # (P, 2, k)
    second = (chosen[:, 1, :] < chosen[:, 0, :]) & mask
    # The same orientation as the exact search: the first valid response is in the first cluster.
    first_valid = np.argmax(mask, axis=1)
    flip = second[np.arange(p_count), first_valid]
    partition: BoolArray = np.where(flip[:, None], mask & ~second, second)
    return partition


def two_means_partition(gram: FloatArray, mask: BoolArray) -> BoolArray:
    """Batched 2-means on unit vectors from their Gram matrices: (P, k), True for the second cluster.

    The first cluster holds each prompt's first valid response. Up to _MAX_EXACT_RESPONSES responses the
    partition is the global optimum (every bipartition scored); above, a Lloyd multi-start.
    """
    gram = np.asarray(gram, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    if gram.shape[-1] <= _MAX_EXACT_RESPONSES:
        return _exact_bipartition(gram, mask)
    return _lloyd_bipartition(gram, mask)


def _lowest_nearest(dist: npt.NDArray[np.float64]) -> IntArray:
    """Per row, the lowest index within _DISTANCE_TOLERANCE of the least distance."""
    least = dist.min(axis=1, keepdims=True)
    nearest: IntArray = np.argmax(dist <= least + _DISTANCE_TOLERANCE, axis=1)
    return nearest


def centroid_pairs(gram: FloatArray, mask: BoolArray) -> tuple[IntArray, IntArray]:
    """The response nearest each 2-means centre (i < j); meaningless where fewer than two are valid."""
    gram = np.asarray(gram, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    second = two_means_partition(gram, mask)
    members = np.stack([mask & ~second, second], axis=1).astype(np.float64)  # (P, 2, k)
    masked = gram * (mask[:, :, None] & mask[:, None, :])
    counts = members.sum(axis=2, keepdims=True)
    inner = members @ masked  # (P, 2, k): Σ_{j∈C} G_ij
    within = (inner * members).sum(axis=2, keepdims=True)  # Σ_{i,j∈C} G_ij
    diag = np.diagonal(masked, axis1=1, axis2=2)[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = diag - 2.0 * inner / counts + within / counts**2  # |x_i − c|²
    dist = np.where(mask[:, None, :] & (counts > 0), dist, np.inf)
    # A two-member cluster's centre is equidistant from both in exact arithmetic; float noise must not
    # choose, so near-ties go to the lowest index, as pairs do.
    first = _lowest_nearest(dist[:, 0, :])
    # Both centres can be nearest the same response; the second centre then takes its next nearest. Lloyd
    # can leave the second cluster empty (identical vectors): the first centre's next nearest then.
    second_dist = np.where(counts[:, 1] > 0, dist[:, 1, :], dist[:, 0, :])
    second_dist[np.arange(len(first)), first] = np.inf
    other = _lowest_nearest(second_dist)
    return np.minimum(first, other), np.maximum(first, other)


def select_batch(
    vectors: FloatArray,
    mask: BoolArray,
    strategy: Strategy | str,
    n_pairs: int = 1,
    seeds: npt.ArrayLike | None = None,
    near_duplicate_threshold: float | None = None,
    pair_scores: npt.ArrayLike | None = None,
) -> BatchSelection:
    """Choose up to n_pairs distinct pairs per prompt.

    vectors: (P, k, d) embeddings, padded; mask: (P, k) True where a response exists; seeds: (P,) for
    ``random``; pair_scores: (P, k·(k−1)/2) in ``np.triu_indices(k, 1)`` order, the priorities of every
    candidate pair when the caller computes them (``active``: app/active/acquisition.py); without them
    ``active`` scores as ``dissimilar``.
    """
    strategy = Strategy(strategy)
    vectors = np.asarray(vectors)
    mask = np.asarray(mask, dtype=bool)
    p_count, k = mask.shape
    if k < 2 or n_pairs < 1:
        empty_i = np.full((p_count, 0), -1, dtype=np.int64)
        return BatchSelection(empty_i, empty_i, np.zeros((p_count, 0)), np.zeros((p_count, 0)), mask.copy())
    sims = similarities(vectors, mask)
    kept = collapse_near_duplicates(sims, mask, near_duplicate_threshold)
    iu, ju = np.triu_indices(k, k=1)
    pair_sims = sims[:, iu, ju]
    pair_ok = kept[:, iu] & kept[:, ju]
    if strategy is Strategy.RANDOM:
        seed_arr = (
            np.zeros(p_count, dtype=np.uint64) if seeds is None else np.asarray(seeds).astype(np.uint64)
        )
        counters = np.arange(len(iu), dtype=np.uint64)
        scores = uniform_hash(seed_arr[:, None], counters[None, :])
    elif strategy is Strategy.SIMILAR:
        scores = 1.0 + pair_sims
    else:
        scores = 1.0 - pair_sims
    if pair_scores is not None:
        scores = np.asarray(pair_scores, dtype=np.float64)
    scores = np.where(pair_ok, scores, -np.inf)
    if strategy is Strategy.CENTROID:
        ci, cj = centroid_pairs(sims, kept)
        pair_index = ci * k - ci * (ci + 1) // 2 + (cj - ci - 1)  # position of (ci, cj) in triu order
        has_pair = kept.sum(axis=1) >= 2
        boosted = scores.copy()
        boosted[np.arange(p_count)[has_pair], pair_index[has_pair]] = np.inf
        order = np.argsort(-boosted, axis=1, kind="stable")
    else:
        order = np.argsort(-scores, axis=1, kind="stable")  # stable: ties keep (i, j) order
    top = order[:, : min(n_pairs, len(iu))]
    rows = np.arange(p_count)[:, None]
    top_ok = pair_ok[rows, top]
    return BatchSelection(
        i=np.where(top_ok, iu[top], -1),
        j=np.where(top_ok, ju[top], -1),
        similarity=np.where(top_ok, pair_sims[rows, top], np.nan),
        priority=np.where(top_ok, scores[rows, top], np.nan),
        kept=kept,
    )


def select_pairs(
    vectors: FloatArray,
    strategy: Strategy | str,
    n_pairs: int = 1,
    seed: int = 0,
    near_duplicate_threshold: float | None = None,
) -> list[PairChoice]:
    """Choose up to ``n_pairs`` distinct pairs among the rows of ``vectors`` (one prompt's responses)."""
    vectors = np.asarray(vectors)
    if len(vectors) < 2:
        return []
    selection = select_batch(
        vectors[None],
        np.ones((1, len(vectors)), dtype=bool),
        strategy,
        n_pairs,
        [seed],
        near_duplicate_threshold,
    )
    return selection.choices(0)


def two_means(unit: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Centres of the 2-means partition of one prompt's unit vectors (for checks against scikit-learn)."""
    unit = np.asarray(unit, dtype=np.float64)
    second = two_means_partition((unit @ unit.T)[None], np.ones((1, len(unit)), dtype=bool))[0]
    return np.stack([unit[~second].mean(axis=0), unit[second].mean(axis=0)])
