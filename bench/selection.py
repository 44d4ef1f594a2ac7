"""Selection time for many prompts at once, given embeddings (no database, no model).

    python bench/selection.py [--prompts 100000] [--candidates 8] [--dim 384] [--repeat 3]

Prints one row per strategy: best-of-N wall time for the batched selector, prompts/s, and the ratio to a
per-prompt Python loop over the same selector measured in this process on a 2,000-prompt sample
(extrapolated). Vectors are random unit vectors (selection cost does not depend on their content).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from app.selection.strategies import select_batch, select_pairs


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--candidates", type=int, default=8)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=20_000, help="prompts per select_batch call")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.prompts, args.candidates, args.dim)).astype(np.float32)
    mask = np.ones((args.prompts, args.candidates), dtype=bool)
    seeds = rng.integers(0, 2**62, size=args.prompts)
    sample = 2_000
    print(
        f"{args.prompts:,} prompts x {args.candidates} candidates x {args.dim} dims, float32 input, "
        f"chunks of {args.chunk:,}; best of {args.repeat}"
    )
    print(f"{'strategy':<11} {'batched s':>10} {'prompts/s':>11} {'loop s (est.)':>14} {'speed-up':>9}")
    for strategy in ("dissimilar", "similar", "random", "centroid"):

        def batched(strategy: str = strategy) -> None:
            for start in range(0, args.prompts, args.chunk):
                stop = start + args.chunk
                select_batch(vectors[start:stop], mask[start:stop], strategy, 1, seeds[start:stop], 0.98)

        def loop(strategy: str = strategy) -> None:
            for p in range(sample):
                select_pairs(vectors[p], strategy, 1, int(seeds[p]), 0.98)

        batched_s = best_of(args.repeat, batched)
        loop_s = best_of(1, loop) * args.prompts / sample
        print(
            f"{strategy:<11} {batched_s:>10.2f} {args.prompts / batched_s:>11,.0f} {loop_s:>14.1f} "
            f"{loop_s / batched_s:>8.1f}x"
        )


if __name__ == "__main__":
    main()
