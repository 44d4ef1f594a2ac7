"""Plain `SentenceTransformer.encode` against the worker's embedding path, on whatever device is there.

    python -m bench.gpu_embed [--texts 20000] [--device auto] [--batch 512] [--dtype float16]
                              [--tokenizer-threads 8] [--encode-batch 256]

Texts: the 3,997 real answers of data/simulation/alpaca_eval_500x8.jsonl.gz, repeated with a numbered suffix
up to --texts (so no two are equal and none is skipped as already embedded). Both sides use the packaged
MiniLM on the same device, loaded and warmed before the clock starts:

- **plain encode**: `SentenceTransformer.encode(texts, batch_size=--encode-batch)` in fp32, what a notebook
  does (one-thread tokenisation inside, batches sorted by characters);
- **worker path**: `app.embeddings.service.encode` as the embedding task runs it, with REAL_EMBEDDING_DEVICE,
  REAL_EMBEDDING_BATCH_SIZE, REAL_EMBEDDING_DTYPE and REAL_EMBEDDING_TOKENIZER_THREADS from the options: one
  tokenizer pass over all texts in threads, batches sorted by token count, the next batch padded and copied
  while one runs (on an accelerator), rows ready to insert (no database).

Prints texts/s of each, the ratio, and the mean cosine between the two sides' vectors. Runs on a CPU too (a
small --texts), which is how the tests' machines check it; the numbers that matter come from a GPU.
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"


def load_texts(count: int) -> list[str]:
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        answers = [r["text"] for line in handle for r in json.loads(line)["responses"]]
    return [answers[n % len(answers)] + ("" if n < len(answers) else f" ({n})") for n in range(count)]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=512, help="REAL_EMBEDDING_BATCH_SIZE of the worker path")
    parser.add_argument("--dtype", default="float16", help="REAL_EMBEDDING_DTYPE (off the CPU)")
    parser.add_argument("--tokenizer-threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--encode-batch", type=int, default=256, help="batch_size of the plain encode")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.update(
        REAL_EMBEDDING_DEVICE=args.device,
        REAL_EMBEDDING_BATCH_SIZE=str(args.batch),
        REAL_EMBEDDING_DTYPE=args.dtype,
        REAL_EMBEDDING_TOKENIZER_THREADS=str(args.tokenizer_threads),
        REAL_EMBEDDING_THREADS=str(os.cpu_count() or 1),
    )
    import torch
    from sentence_transformers import SentenceTransformer

    from app.config import DEFAULT_EMBEDDING_MODEL, get_settings
    from app.embeddings import service
    from app.embeddings.codec import from_bytes
    from app.embeddings.embedder import Embedder, get_embedder, resolve_model_path

    get_settings.cache_clear()
    texts = load_texts(args.texts)
    embedder = get_embedder(DEFAULT_EMBEDDING_MODEL)
    assert isinstance(embedder, Embedder)
    device = embedder.device
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "no GPU"
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, device {device} ({gpu}), {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}: {len(texts):,} texts; worker path batch {args.batch}, "
        f"{args.dtype if device != 'cpu' else 'float32'}, {args.tokenizer_threads} tokenizer threads",
        flush=True,
    )
    plain = SentenceTransformer(resolve_model_path(DEFAULT_EMBEDDING_MODEL), device=device)
    warm = texts[: min(len(texts), 2 * args.batch)]
    plain.encode(warm, batch_size=args.encode_batch)
    list(
        service.encode(
            DEFAULT_EMBEDDING_MODEL, {str(n): t for n, t in enumerate(warm)}, batch=service.store_batch()
        )
    )
    sync(device)

    start = time.perf_counter()
    reference = plain.encode(texts, batch_size=args.encode_batch, convert_to_numpy=True)
    sync(device)
    plain_s = time.perf_counter() - start

    keyed = {str(n): t for n, t in enumerate(texts)}
    start = time.perf_counter()
    rows = [
        row
        for chunk in service.encode(DEFAULT_EMBEDDING_MODEL, keyed, batch=service.store_batch())
        for row in chunk
    ]
    sync(device)
    worker_s = time.perf_counter() - start

    vectors = np.zeros_like(reference)
    for row in rows:
        vectors[int(str(row["text_sha256"]))] = from_bytes(row["vector"], int(str(row["dim"])))  # type: ignore[arg-type]
    cosine = float(np.sum(vectors * reference, axis=1).mean())
    print("\n| path | texts/s | vs plain encode |")
    print("| --- | ---: | ---: |")
    print(f"| plain encode (fp32, batch {args.encode_batch}) | {len(texts) / plain_s:,.0f} | 1.00x |")
    print(f"| worker path | {len(texts) / worker_s:,.0f} | {plain_s / worker_s:.2f}x |")
    print(f"mean cosine worker path vs plain encode: {cosine:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
