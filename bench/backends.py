"""Faster embedding backends: throughput, and how much of REAL's benefit each keeps, on real answers.

    python -m bench.backends [--prompts 100] [--backends torch,onnx,onnx-int8,seq128,onnx-int8+seq128,static]

Texts: the first --prompts prompts of data/simulation/alpaca_eval_500x8.jsonl.gz with their (up to 8) real
answers. Each backend is the packaged MiniLM under a project model name (`sentence-transformers/
all-MiniLM-L6-v2@<options>`, app/embeddings/embedder.py) and runs the service's own path (one tokenizer
pass, length-sorted batches of REAL_EMBEDDING_BATCH_SIZE, REAL_EMBEDDING_THREADS threads), loaded and
warmed before its clock starts; its one-off build (ONNX export, model2vec distillation) is timed apart.

Quality: per prompt, the pair the project's own selector (`select_pairs`, strategy "dissimilar", the 0.98
near-duplicate collapse) picks from that backend's vectors, scored by the reference model (the default,
`torch` row): benefit kept = 1 − mean(reference cosine of the pick − reference minimum) / mean(reference
mean − reference minimum), i.e. the share of the dissimilarity REAL gains over a random pair that is kept.
Agreement: the same pair as the reference's pick. Speed-ups are against the reference in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"
BASE = "sentence-transformers/all-MiniLM-L6-v2"


def load_prompts(count: int) -> list[list[str]]:
    prompts = []
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        for line in handle:
            prompts.append([r["text"] for r in json.loads(line)["responses"]])
            if len(prompts) == count:
                break
    return prompts


def picks(vectors: list[Any]) -> list[tuple[int, int] | None]:
    """The selector's pair per prompt; None where it finds none (every answer a near-duplicate of the
    others under these vectors: the prompt would be unpairable)."""
    from app.selection.strategies import select_pairs

    chosen: list[tuple[int, int] | None] = []
    for unit in vectors:
        choices = select_pairs(np.asarray(unit, dtype=np.float32), "dissimilar", 1, 0, 0.98)
        chosen.append((choices[0].i, choices[0].j) if choices else None)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--backends", default="torch,onnx,onnx-int8,seq128,onnx-int8+seq128,static")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.config import get_settings
    from app.embeddings.embedder import load_embedder

    prompts = load_prompts(args.prompts)
    texts = [t for answers in prompts for t in answers]
    bounds = np.cumsum([0, *[len(a) for a in prompts]])
    settings = get_settings()
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}: "
        f"{len(prompts)} prompts, {len(texts)} answers; batch {settings.embedding_batch_size}, "
        f"{settings.embedding_threads} threads",
        flush=True,
    )
    results: dict[str, tuple[float, float, Any]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        name = BASE if backend == "torch" else f"{BASE}@{backend}"
        start = time.perf_counter()
        embedder = load_embedder(name)
        embedder.encode(["warm up", "the model"])
        build_s = time.perf_counter() - start
        start = time.perf_counter()
        vectors = embedder.encode(texts).vectors
        seconds = time.perf_counter() - start
        results[backend] = (seconds, build_s, vectors)
        print(f"  {backend}: {len(texts) / seconds:.1f} texts/s (load/build {build_s:.1f} s)", flush=True)
    if "torch" not in results:
        print("the reference (torch) was not run: no quality columns")
        return 0
    reference = results["torch"][2]
    ref_units = [reference[bounds[p] : bounds[p + 1]] for p in range(len(prompts))]
    ref_picks = picks(ref_units)
    sims = [u @ u.T for u in ref_units]
    upper = [np.triu_indices(len(u), k=1) for u in ref_units]
    minimum = np.array([s[iu].min() for s, iu in zip(sims, upper, strict=True)])
    mean = np.array([s[iu].mean() for s, iu in zip(sims, upper, strict=True)])
    print(
        "\n| backend | texts/s | speed-up | load/build s | same pair as reference | mean cosine gap | "
        "benefit kept |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    ref_s = results["torch"][0]
    for backend, (seconds, build_s, vectors) in results.items():
        units = [vectors[bounds[p] : bounds[p + 1]] for p in range(len(prompts))]
        chosen = picks(units)
        # A prompt left without a pair keeps none of the benefit: scored as a random pair (the mean).
        picked = np.array([m if c is None else s[c] for s, c, m in zip(sims, chosen, mean, strict=True)])
        gap = picked - minimum
        kept = 1 - gap.mean() / (mean - minimum).mean()
        unpaired = sum(c is None for c in chosen)
        agree = np.mean([a == b for a, b in zip(chosen, ref_picks, strict=True)])
        print(
            f"| {backend} | {len(texts) / seconds:,.1f} | {ref_s / seconds:.2f}x | {build_s:.1f} | "
            f"{agree:.2f} | {gap.mean():.4f} | {kept:.1%} |"
            + (f" ({unpaired} prompts unpaired)" if unpaired else "")
        )
    print(f"random pair: mean cosine gap {(mean - minimum).mean():.4f} (benefit kept 0%)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
