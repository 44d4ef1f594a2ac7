"""Neighbour index benchmark: hnswlib vs exact numpy, build time, queries/s and recall@10 at a few sizes.

Run: .venv/bin/python -m bench.neighbors [--sizes 10000,50000,100000] [--queries 500]

Vectors: about 2,700 real sentences of the AlpacaEval slices embedded by all-MiniLM-L6-v2, then grown to
each size synthetically: every vector is a real vector moved up to half way towards one of its 20 nearest
real neighbours plus Gaussian noise (norm about 0.5), then normalised (so the set keeps the real vectors'
neighbourhood structure; it is not uniform noise, on which ANN recall is unrepresentatively poor).
Queries are held-out vectors made the same way. Both indexes are timed in this process, one query per call
on one thread (what the API does per request), best of 3 passes; ratios are against the exact numpy
baseline. "near-dup pass" is the build task's second step: every text's 10 nearest, batched, all threads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import numpy.typing as npt

from app.config import DEFAULT_EMBEDDING_MODEL
from app.neighbors.index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    VectorIndex,
    near_duplicate_pairs,
    normalise,
)

K = 10
EF_SEARCH = 100
EXACT_DUPS_MAX = 50_000


def real_vectors() -> npt.NDArray[np.float32]:
    """The real MiniLM sentence vectors (normalised)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.embeddings.embedder import get_embedder
    from tests.neighbors.sentences import real_sentences

    return normalise(get_embedder(DEFAULT_EMBEDDING_MODEL).encode(real_sentences()).vectors)


def grow(real: npt.NDArray[np.float32], size: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """`size` vectors: interpolations between a real vector and a near real neighbour, plus noise."""
    near = np.argsort(-(real @ real.T), axis=1)[:, 1:21]
    base = rng.integers(0, len(real), size)
    partner = near[base, rng.integers(0, near.shape[1], size)]
    t = rng.uniform(0.0, 0.5, (size, 1)).astype(np.float32)
    # Noise of norm about 0.5: the synthetic sets' nearest-neighbour similarities (top-1 about 0.77,
    # 10th about 0.66 at 20k) stay close to the real sentences' (0.75 and 0.53 among 2,731).
    noise = rng.normal(0.0, 0.5 / np.sqrt(real.shape[1]), (size, real.shape[1])).astype(np.float32)
    return normalise((1 - t) * real[base] + t * real[partner] + noise)


def build(vectors: npt.NDArray[np.float32], *, hnsw_threshold: int) -> tuple[float, VectorIndex]:
    """(seconds, index): exact when hnsw_threshold is above the count, else HNSW on every core."""
    start = time.perf_counter()
    index = VectorIndex.build(vectors, hnsw_threshold=hnsw_threshold, ef_search=EF_SEARCH)
    return time.perf_counter() - start, index


def single_queries(
    index: VectorIndex, queries: npt.NDArray[np.float32]
) -> tuple[float, npt.NDArray[np.int64]]:
    """Queries per second (best of 3 passes: the machine is shared), one query per call on one thread."""
    found = np.empty((len(queries), K), np.int64)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for row, query in enumerate(queries):
            found[row] = index.search(query[None, :], K, num_threads=1)[0][0]
        best = min(best, time.perf_counter() - start)
    return len(queries) / best, found


def near_duplicate_pass(index: VectorIndex) -> float:
    """Seconds for the build task's near-duplicate pass over every indexed text."""
    start = time.perf_counter()
    near_duplicate_pairs(index, floor=0.9)
    return time.perf_counter() - start


def recall(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64]) -> float:
    """Mean share of the true top K that was found."""
    return float(
        np.mean([len(set(a) & set(b)) / K for a, b in zip(found.tolist(), truth.tolist(), strict=True)])
    )


def real_recall(real: npt.NDArray[np.float32]) -> float:
    """HNSW recall@10 on the real vectors alone, each queried against the others (as the test does)."""
    sims = real @ real.T
    np.fill_diagonal(sims, -np.inf)
    truth = np.argsort(-sims, axis=1, kind="stable")[:, :K]
    found = build(real, hnsw_threshold=0)[1].search(real, K + 1, num_threads=1)[0].tolist()
    return recall(
        np.array([[label for label in row if label != n][:K] for n, row in enumerate(found)]), truth
    )


Row = tuple[int, str, float, float, float, float, float, float]


def measure(size: int, real: npt.NDArray[np.float32], queries: int, rng: np.random.Generator) -> list[Row]:
    """The exact row and the HNSW row for one size."""
    vectors = grow(real, size, rng)
    held_out = grow(real, queries, rng)
    exact_build, exact = build(vectors, hnsw_threshold=size + 1)
    hnsw_build, hnsw = build(vectors, hnsw_threshold=0)
    exact_qps, truth = single_queries(exact, held_out)
    exact_dups = near_duplicate_pass(exact) if size <= EXACT_DUPS_MAX else float("nan")
    hnsw_qps, found = single_queries(hnsw, held_out)
    return [
        # Quadratic for exact; above the 50k default threshold the service builds HNSW, so it is not timed.
        (size, "exact numpy", exact_build, exact_dups, exact_qps, 1.0, 1.0, 1.0),
        (
            size,
            "hnswlib",
            hnsw_build,
            near_duplicate_pass(hnsw),
            hnsw_qps,
            recall(found, truth),
            hnsw_build / exact_build,
            hnsw_qps / exact_qps,
        ),
    ]


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000,100000")
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    real = real_vectors()
    embed_s = time.perf_counter() - started
    rows = [row for size in args.sizes.split(",") for row in measure(int(size), real, args.queries, rng)]
    out = sys.stdout
    out.write(
        f"{len(real)} real all-MiniLM-L6-v2 sentence vectors (embedded in {embed_s:.1f} s), grown "
        "synthetically to each size (interpolation towards a real neighbour + noise; see the docstring).\n"
        f"hnswlib: M={HNSW_M}, ef_construction={HNSW_EF_CONSTRUCTION}, ef={EF_SEARCH}, built on "
        f"{os.cpu_count()} threads; queries: {args.queries} held-out vectors, k={K}, one per call on one "
        "thread, best of 3 passes.\n\n"
    )
    out.write(
        "| vectors | index | build (s) | near-dup pass (s) | queries/s | recall@10 | build vs exact "
        "| queries/s vs exact |\n"
    )
    out.write("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
    for size, kind, build_s, dup_s, qps, rec, build_ratio, qps_ratio in rows:
        dups = "—" if np.isnan(dup_s) else f"{dup_s:.1f}"
        out.write(f"| {size:,} | {kind} | {build_s:.2f} | {dups} | {qps:,.0f} | {rec:.4f} ")
        out.write(f"| {build_ratio:,.0f}× | {qps_ratio:.1f}× |\n")
    alone = real_recall(real)
    out.write(f"\nrecall@10 of hnswlib on the {len(real)} real vectors alone (self left out): {alone:.4f}\n")
    out.write(
        f"Total {time.perf_counter() - started:.0f} s; 1-minute load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after (other work on the machine slows every number).\n"
    )


if __name__ == "__main__":
    main()
