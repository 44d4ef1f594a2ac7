"""CPU model batches: a fixed number of texts against a padded-token budget (a benchmark, not a test).

    .venv/bin/python -m bench.batching [--repeat 5] [--configs 32/0,16/0,32/1536,128/1536]

Each config is REAL_EMBEDDING_BATCH_SIZE / REAL_EMBEDDING_BATCH_TOKENS (0: no token budget) applied to one
loaded embedder (the packaged MiniLM), which encodes three sets of texts the way the embedding task does
(one tokenizer pass, shortest first): 300 long AlpacaEval answers, the 600 shortest of 1,600 answers, and
1,200 one-line answers. Configs are interleaved (a different one first each repetition) and each cell is the
median seconds of --repeat runs, with its speed against the first config. The vectors of every config are
compared with the first's (lowest cosine printed): batching must not change them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from bench.pipeline import load_items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--configs", default="32/0,16/0,32/1536,128/1536")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from app.config import get_settings
    from app.embeddings.embedder import Embedder, get_embedder

    configs = [tuple(int(x) for x in c.split("/")) for c in args.configs.split(",")]
    answers = [r["text"] for i in load_items(200, 8, 1) for r in i["responses"]]
    sets = {
        "long answers": [r["text"] for i in load_items(60, 5, 1, skip=400) for r in i["responses"]],
        "shorter answers": sorted(answers, key=len)[:600],
        "one-line answers": [
            f"Answer {k} to question {n}: about {n * 7 + k} things." for n in range(300) for k in range(4)
        ],  # fmt: skip
    }
    embedder = get_embedder(get_settings().embedding_model)
    assert isinstance(embedder, Embedder)
    embedder.encode(sets["long answers"][:64])  # warm
    print(f"load average {os.getloadavg()[0]:.2f}; batch size / token budget; median of {args.repeat}")
    header = " | ".join(f"{s}/{t}" for s, t in configs)
    print(f"\n| texts | {header} | lowest cosine to {configs[0][0]}/{configs[0][1]} |")
    print("| --- |" + " ---: |" * (len(configs) + 1))
    for name, texts in sets.items():
        seconds: dict[tuple[int, ...], list[float]] = {c: [] for c in configs}
        vectors: dict[tuple[int, ...], np.ndarray] = {}
        for k in range(args.repeat):
            for config in configs[k % len(configs) :] + configs[: k % len(configs)]:
                embedder.batch_size, embedder.batch_tokens = config
                started = time.perf_counter()
                vectors[config] = embedder.encode(texts).vectors
                seconds[config].append(time.perf_counter() - started)
        base = statistics.median(seconds[configs[0]])
        cells = []
        for config in configs:
            median = statistics.median(seconds[config])
            cells.append(f"{median:.2f} s ({base / median:.2f}×)")
        lowest = min(float(np.min(np.sum(vectors[c] * vectors[configs[0]], axis=1))) for c in configs)
        print(f"| {name} ({len(texts)}) | " + " | ".join(cells) + f" | {lowest:.6f} |", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
