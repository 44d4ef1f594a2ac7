"""Ingest throughput and the API process's memory (a benchmark, not a test).

    .venv/bin/python -m bench.ingest                 # the JSON route: --batches 20 --batch-size 500
    .venv/bin/python -m bench.ingest --upload        # + the streamed JSONL upload: --upload-prompts 1000000
    .venv/bin/python -m bench.ingest --upload --gzip # the upload gzipped on the fly
    [--answers 4] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--broker redis://…/13]
    [--profile FILE.svg]  (py-spy on the API process during the measured part; BENCH_PY_SPY or PATH)
    [--upload-batch-lines N] (REAL_UPLOAD_BATCH_LINES for the server) [--port N]

It creates a Postgres database `bench_ingest_<pid>` (dropped at the end), migrates it and starts the
production server as a separate process, `real-align api --workers 1`, with REAL_BROKER_URL pointing at a
Redis database and no Celery worker: the embedding tasks an ingest sends are recorded in the outbox and
queued, never run, so what is measured is ingest alone (embedding is bench/pipeline.py's). The Redis
database is flushed before and after.

The JSON route: --batches requests of --batch-size prompts × --answers short answers
(`POST /v1/projects/{id}/prompts`, one after another, one keep-alive connection), each timed; then the same
batches again (all duplicates: the idempotent re-ingest path). The upload: one
`POST /v1/projects/{id}/prompts:upload` whose JSONL body is generated while it is sent (never held in memory
or on disk), chunked, optionally gzipped; then the job's counters are checked against what was sent.

Peak RSS is the server process's VmHWM (/proc); RSS is also sampled every 0.2 s to show whether it is flat.
Prompts/s counts prompts accepted (stored and committed) per second of wall time of the requests. The
upload also reports CPU seconds per 1,000 prompts, which the load of other work on the machine moves far
less than the wall time: the server process's (/proc utime + stime), its Postgres backends' (the bench
database's client sessions in pg_stat_activity; autovacuum and background writers not counted) and the
client's (generating the body, `time.process_time`).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.queue import create_pg_database, drop_pg_database, free_port, server, server_env

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def item(n: int, answers: int, tag: str) -> dict[str, Any]:
    """One prompt with short answers, all distinct."""
    return {
        "external_id": f"{tag}-{n}",
        "prompt": f"Question {n}: what is {n} plus {n % 97}?",
        "responses": [f"Answer {k} to {n}: {n + n % 97 + k}" for k in range(answers)],
        "metadata": {"source": "bench", "n": n},
    }


def jsonl(count: int, answers: int, tag: str, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """The upload's body, generated as it is sent."""
    buffer: list[bytes] = []
    size = 0
    for n in range(count):
        line = json.dumps(item(n, answers, tag), separators=(",", ":")).encode() + b"\n"
        buffer.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield b"".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield b"".join(buffer)


def gzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
    for chunk in chunks:
        out = packer.compress(chunk)
        if out:
            yield out
    yield packer.flush()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu(admin_url: str, database: str) -> float:
    """CPU seconds of the Postgres backends connected to ``database`` (same machine only; 0 elsewhere)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
        pids = [row[0] for row in conn.execute(query, (database,))]
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


def py_spy() -> str:
    found = os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    return found


class RssWatch:
    """Samples the server's RSS every 0.2 s in a thread; VmHWM at the end is the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def field(self, name: str) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
        return 0.0

    def _loop(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(0.2):
            self.samples.append((time.monotonic() - started, self.field("VmRSS")))

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def profile(self) -> str:
        """RSS at 10%, 50%, 90% and 100% of the samples."""
        if not self.samples:
            return "-"
        picks = [
            self.samples[min(len(self.samples) - 1, int(len(self.samples) * q))][1] for q in (0.1, 0.5, 0.9)
        ]
        picks.append(self.samples[-1][1])
        return " / ".join(f"{v:.0f}" for v in picks)


def json_route(
    http: httpx.Client, project: str, batches: int, size: int, answers: int, tag: str
) -> dict[str, Any]:
    times: list[float] = []
    accepted = 0
    for b in range(batches):
        body = {"items": [item(b * size + k, answers, tag) for k in range(size)]}
        started = time.perf_counter()
        response = http.post(f"/v1/projects/{project}/prompts", json=body)
        times.append(time.perf_counter() - started)
        if response.status_code != 202:
            raise RuntimeError(f"batch {b}: {response.status_code} {response.text[:500]}")
        accepted += response.json()["accepted"]
    return {"accepted": accepted, "times": times}


def upload(
    http: httpx.Client, project: str, count: int, answers: int, tag: str, gzip: bool
) -> dict[str, Any]:
    body: Iterator[bytes] = jsonl(count, answers, tag)
    headers = {"Content-Type": "application/x-ndjson"}
    if gzip:
        body = gzipped(body)
        headers["Content-Encoding"] = "gzip"
    started = time.perf_counter()
    response = http.post(f"/v1/projects/{project}/prompts:upload", content=body, headers=headers)
    seconds = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"upload: {response.status_code} {response.text[:500]}")
    result = response.json()
    return {"seconds": seconds, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--answers", type=int, default=4)
    parser.add_argument("--upload", action="store_true", help="also measure the streamed JSONL upload")
    parser.add_argument("--upload-only", action="store_true", help="only the upload")
    parser.add_argument("--upload-prompts", type=int, default=1_000_000)
    parser.add_argument("--gzip", action="store_true", help="gzip the upload on the fly")
    parser.add_argument("--upload-batch-lines", type=int, help="REAL_UPLOAD_BATCH_LINES for the server")
    parser.add_argument("--port", type=int, help="the server's port (default: a free one)")
    parser.add_argument(
        "--profile",
        help="py-spy profile of the server while measured (.svg: flame graph; .txt: collapsed stacks)",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
        help="a Redis database the tasks are queued in (flushed before and after; no worker takes them)",
    )
    args = parser.parse_args(argv)
    import redis

    broker = redis.Redis.from_url(args.broker)
    broker.flushdb()
    name = f"bench_ingest_{os.getpid()}"
    url = create_pg_database(args.pg_admin_url, name)
    key = "bench-" + secrets.token_urlsafe(24)
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rows: list[list[str]] = []
    cpu_line = ""
    try:
        env = server_env(url, key, pool_size=5, overflow=5)
        env["REAL_BROKER_URL"] = args.broker
        if args.upload_batch_lines:
            env["REAL_UPLOAD_BATCH_LINES"] = str(args.upload_batch_lines)
        subprocess.run([str(VENV_BIN / "real-align"), "migrate"], env=env, cwd=ROOT, check=True)
        port = args.port or free_port()
        with (
            server(env, port, 1, ROOT, folder / "server.log") as proc,
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=3600
            ) as http,
        ):
            spy = None
            if args.profile:
                spy = subprocess.Popen(
                    [
                        py_spy(),
                        "record",
                        "-o",
                        args.profile,
                        "-p",
                        str(proc.pid),
                        "-r",
                        "50",
                        "--format",
                        "raw" if args.profile.endswith(".txt") else "flamegraph",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            project = http.post("/v1/projects", json={"name": "bench ingest"}).json()["id"]
            watch = RssWatch(proc.pid)
            with watch:
                total = args.batches * args.batch_size
                if not args.upload_only:
                    first = json_route(http, project, args.batches, args.batch_size, args.answers, "j")
                    again = json_route(http, project, args.batches, args.batch_size, args.answers, "j")
                    for label, run in (("JSON batches", first), ("same again (duplicates)", again)):
                        seconds = sum(run["times"])
                        times = run["times"]
                        rows.append(
                            [
                                label,
                                f"{total:,}",
                                f"{run['accepted']:,}",
                                f"{seconds:.2f}",
                                f"{total / seconds:,.0f}",
                                f"{times[0] * 1000:.0f} / {sorted(times)[len(times) // 2] * 1000:.0f} / "
                                f"{times[-1] * 1000:.0f}",
                                f"{watch.field('VmHWM'):.0f}",
                                watch.profile(),
                            ]
                        )
                        print(f"{label}: {total / seconds:,.0f} prompts/s", flush=True)
                if args.upload or args.upload_only:
                    watch.samples.clear()
                    server_cpu, pg_cpu = cpu_seconds(proc.pid), backend_cpu(args.pg_admin_url, name)
                    client_cpu = time.process_time()
                    up = upload(http, project, args.upload_prompts, args.answers, "u", args.gzip)
                    client_cpu = time.process_time() - client_cpu
                    server_cpu = cpu_seconds(proc.pid) - server_cpu
                    pg_cpu = backend_cpu(args.pg_admin_url, name) - pg_cpu
                    per_k = 1000 / max(up["accepted"], 1)
                    cpu_line = (
                        f"CPU s per 1,000 prompts: server {server_cpu * per_k:.3f}, Postgres backends "
                        f"{pg_cpu * per_k:.3f}, client {client_cpu * per_k:.3f} "
                        f"(server {server_cpu:.1f} s in all)"
                    )
                    job = http.get(f"/v1/jobs/{up['job_id']}").json()
                    if (up["accepted"], up["lines"], up["errors"]) != (args.upload_prompts,) * 2 + (0,):
                        raise RuntimeError(f"upload result {up} does not match what was sent")
                    rows.append(
                        [
                            "upload" + (" (gzip)" if args.gzip else ""),
                            f"{args.upload_prompts:,}",
                            f"{up['accepted']:,}",
                            f"{up['seconds']:.1f}",
                            f"{up['accepted'] / up['seconds']:,.0f}",
                            "-",
                            f"{watch.field('VmHWM'):.0f}",
                            watch.profile(),
                        ]
                    )
                    print(f"upload: {up['accepted'] / up['seconds']:,.0f} prompts/s; job {job}", flush=True)
                    print(cpu_line, flush=True)
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
    finally:
        drop_pg_database(args.pg_admin_url, name)
        broker.flushdb()
    base = float(rows[0][4].replace(",", "")) if rows else 0.0
    print()
    print(f"{args.answers} answers per prompt; Postgres; `real-align api --workers 1`, tasks queued, not run")
    print()
    print(
        "| what | prompts sent | accepted | seconds | prompts/s | vs JSON batches | "
        "request ms first / median / last | peak RSS (MB) | RSS 10% / 50% / 90% / end (MB) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for r in rows:
        ratio = f"{float(r[4].replace(',', '')) / base:.2f}×" if base else "-"
        print("| " + " | ".join([*r[:5], ratio, *r[5:]]) + " |")
    if cpu_line:
        print()
        print(cpu_line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
