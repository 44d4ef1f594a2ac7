"""Annotation-queue throughput and latency against the production server (a benchmark, not a test).

    .venv/bin/python -m bench.queue [--seconds 15] [--pairs 8000] [--annotators 1,10,50]
                                    [--db postgres,sqlite] [--workers 2] [--lane on[,off,...]] [--py-spy DIR]

--lane runs the Postgres cells once per value, in that order, each with its own server: `on` is the default
(an annotator's claim and label as one statement, app/queue/fastlane.py), `off` sets
REAL_QUEUE_FASTLANE=false so they take the unit-of-work path, which calls the same SQL functions
(`on,off,on,off` interleaves the two against drift).

For each database it creates a dedicated database (Postgres: `bench_queue_<pid>` on --pg-admin-url, dropped at
the end; SQLite: a file in a temporary folder), runs `real-align migrate`, then starts
`real-align api --host 127.0.0.1 --port PORT --workers N` as a separate process (REAL_ENV=test, a random
bootstrap admin key, rate limit and lease cap out of the way, REAL_DB_POOL_SIZE sized for the concurrency, no
broker). For each annotator count it seeds a fresh project of --pairs pairs,
with a budget of as many labels, through the ORM (no embedding; `tests.factories`) and runs ANALYZE, creates
N annotator keys (POST /v1/keys, members of the project), then the N annotators loop claim -> label
`{"choice": "a"}`, each with its own key (the production path: key lookup, membership, lease cap, budget),
until --seconds pass or the queue answers 204. A claim already held at the deadline is still labelled, so no
lease is left behind.

The load client is this process: asyncio with one keep-alive HTTP/1.1 connection per annotator and a minimal
hand-written HTTP client (a few tens of microseconds of CPU per request, so the two shared cores go to the
server and the database, not to the client; its CPU is printed). Every request's latency and status are kept.

After each cell the database is checked: slots with two labels, labels == COUNT(DISTINCT pair_id, annotator),
labels == acknowledged 201s, and the client's own log (no pair handed out twice). "double hand-outs" is the
largest of those discrepancies; it must be 0. Bounded: --seconds per cell, at most 2 x pairs + 10 x N
requests per annotator-cell, 30 s per request; loopback only. The server and the database are removed at the
end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
REQUEST_TIMEOUT_S = 30.0


# ----------------------------------------------------------------------------------------------- HTTP client


class HttpError(Exception):
    """The connection broke or the response could not be read."""


class Conn:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1 (enough HTTP for this server's JSON answers)."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        request = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n".encode()
            + self.auth
            + b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        try:
            return await asyncio.wait_for(self._roundtrip(request), REQUEST_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, HttpError, ValueError):
            await self.close()
            raise

    async def _roundtrip(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(request)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise HttpError("chunked responses are not expected from this server")
        length = int(headers.get("content-length", "0"))
        body = await self.reader.readexactly(length) if length else b""
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body


# ----------------------------------------------------------------------------------------------- one cell


@dataclass
class CellLog:
    """Everything one (database, annotators) cell recorded."""

    claim_ms: list[float] = field(default_factory=list)
    label_ms: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # "claim 200", "label 201", "claim error", ...
    round_trips: int = 0
    handed_out: Counter[frozenset[str]] = field(default_factory=Counter)  # pair (its two response ids)
    wall_s: float = 0.0
    exhausted: bool = False
    client_cpu_s: float = 0.0


async def run_cell(
    port: int, keys: list[str], project_id: uuid.UUID, annotators: int, seconds: float, cap: int
) -> CellLog:
    """N annotators, each with its own key, claim -> label until the deadline or an empty queue."""
    log = CellLog()
    claim_path = f"/v1/projects/{project_id}/queue/claim"
    conns = [Conn(port, keys[n]) for n in range(annotators)]
    for conn in conns:  # connect before the clock starts
        await conn._connect()
    start_gate = asyncio.Event()

    async def annotate(n: int, conn: Conn, deadline: float) -> None:
        await start_gate.wait()
        requests = 0
        while time.perf_counter() < deadline and requests < cap:
            requests += 1
            t0 = time.perf_counter()
            try:
                status, body = await conn.post(claim_path, {})
            except Exception:  # noqa: BLE001 - a broken or timed-out request is an error, not a crash
                log.statuses["claim error"] += 1
                await asyncio.sleep(0.05)
                continue
            log.claim_ms.append((time.perf_counter() - t0) * 1000)
            log.statuses[f"claim {status}"] += 1
            if status == 204:
                log.exhausted = True
                return
            if status != 200:
                await asyncio.sleep(0.05)
                continue
            claimed = json.loads(body)
            log.handed_out[frozenset((claimed["response_a"]["id"], claimed["response_b"]["id"]))] += 1
            label_path = f"/v1/assignments/{claimed['assignment_id']}/label"
            for _retry in range(3):  # always label what was claimed, deadline or not
                requests += 1
                t0 = time.perf_counter()
                try:
                    status, _ = await conn.post(label_path, {"choice": "a"})
                except Exception:  # noqa: BLE001
                    log.statuses["label error"] += 1
                    continue
                log.label_ms.append((time.perf_counter() - t0) * 1000)
                log.statuses[f"label {status}"] += 1
                if status == 201:
                    log.round_trips += 1
                if status < 500:
                    break

    cpu0 = time.process_time()
    t_start = time.perf_counter()
    deadline = t_start + seconds
    tasks = [asyncio.create_task(annotate(n, conn, deadline)) for n, conn in enumerate(conns)]
    start_gate.set()
    try:
        await asyncio.gather(*tasks)
    finally:
        log.wall_s = time.perf_counter() - t_start
        log.client_cpu_s = time.process_time() - cpu0
        for task in tasks:
            task.cancel()
        for conn in conns:
            await conn.close()
    return log


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


# ----------------------------------------------------------------------------------------------- processes


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the server's process group (it was started in its own session), then SIGKILL if needed."""
    if proc is None or proc.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@contextmanager
def server(
    env: dict[str, str], port: int, workers: int, cwd: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`real-align api` on 127.0.0.1:port, waited for until /healthz answers, stopped on exit."""
    cmd = [
        str(VENV_BIN / "real-align"),
        "api",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log_path}")
            with suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer /healthz within 90 s; see {log_path}")
            time.sleep(0.2)
        time.sleep(1.0)  # let every worker finish its start-up, not only the first to answer
        yield proc
    finally:
        stop_process(proc)


# ----------------------------------------------------------------------------------------------- databases


def create_pg_database(admin_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_backend_cpu(admin_url: str, name: str) -> dict[int, float]:
    """CPU seconds so far of every Postgres backend connected to the benchmark database."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        pids = [
            row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))
        ]
    return {pid: cpu_seconds(pid) for pid in pids}


def annotator_keys(port: int, admin_key: str, project_id: uuid.UUID, count: int, label: str) -> list[str]:
    """One annotator key per simulated annotator, member of the project (POST /v1/keys, as an admin would)."""
    made = []
    for n in range(count):
        body = {"role": "annotator", "name": f"{label}-ann-{n}", "projects": [str(project_id)]}
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/keys",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            made.append(json.loads(answer.read())["key"])
    return made


def seed(database_url: str, pairs: int, label: str) -> uuid.UUID:
    """A fresh project with `pairs` queued pairs (one slot each), straight through the ORM."""
    import app.db.models  # noqa: F401 - every mapped table, so foreign keys resolve
    from app.config import Settings
    from app.db.session import Database
    from tests.factories import make_pairs, make_project

    db = Database(Settings(database_url=database_url, env="test", db_pool_size=1, db_max_overflow=0))
    try:
        with db.session() as session:
            project = make_project(session, name=label, budget=pairs)
            make_pairs(session, project, pairs)
            project_id = project.id
        # Planner statistics as autovacuum would have them in steady state: right after a bulk insert into
        # a fresh database the claim query is planned on empty-table estimates (about 100 ms instead of
        # about 5 ms per claim on Postgres with 3,000 pairs), which measures the seeding, not the queue.
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
        return project_id
    finally:
        db.dispose()


def verify(database_url: str, project_id: uuid.UUID) -> dict[str, int]:
    """Labels, distinct (pair, annotator) and slots with two or more labels, from the database."""
    from sqlalchemy import func, select

    from app.config import Settings
    from app.db.session import Database
    from app.queue.models import Assignment, Label

    db = Database(Settings(database_url=database_url, env="test", db_pool_size=1, db_max_overflow=0))
    try:
        with db.session() as session:
            labels = session.scalar(
                select(func.count()).select_from(Label).where(Label.project_id == project_id)
            )
            distinct = session.scalar(
                select(func.count()).select_from(
                    select(Label.pair_id, Label.annotator)
                    .where(Label.project_id == project_id)
                    .distinct()
                    .subquery()
                )
            )
            double_slots = session.scalar(
                select(func.count()).select_from(
                    select(Assignment.slot_id)
                    .join(Label, Label.assignment_id == Assignment.id)
                    .where(Label.project_id == project_id)
                    .group_by(Assignment.slot_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            pairs_labelled_twice = session.scalar(
                select(func.count()).select_from(
                    select(Label.pair_id)
                    .where(Label.project_id == project_id)
                    .group_by(Label.pair_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
        return {
            "labels": int(labels or 0),
            "distinct": int(distinct or 0),
            "double_slots": int(double_slots or 0),
            "pairs_labelled_twice": int(pairs_labelled_twice or 0),
        }
    finally:
        db.dispose()


def server_env(
    database_url: str, admin_key: str, pool_size: int, overflow: int, lane: bool = True
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REAL_")}
    env.update(
        REAL_QUEUE_FASTLANE=str(lane).lower(),
        REAL_DATABASE_URL=database_url,
        REAL_ENV="test",
        REAL_BOOTSTRAP_ADMIN_KEY=admin_key,
        REAL_SECRET_KEY=secrets.token_urlsafe(32),
        REAL_RATE_LIMIT_PER_MINUTE="1000000000",
        REAL_MAX_ACTIVE_LEASES_PER_ANNOTATOR="1000",
        REAL_DB_POOL_SIZE=str(pool_size),
        REAL_DB_MAX_OVERFLOW=str(overflow),
        REAL_LOG_LEVEL="WARNING",  # one INFO line per claim would be part of what is measured otherwise
        HF_HUB_OFFLINE="1",
    )
    return env


# ----------------------------------------------------------------------------------------------- main


@dataclass
class Row:
    db: str
    annotators: int
    log: CellLog
    checks: dict[str, int]
    server_cpu_s: float
    pg_cpu_s: float | None
    seed_s: float
    load1: float

    @property
    def rt_s(self) -> float:
        return self.log.round_trips / self.log.wall_s if self.log.wall_s else 0.0

    @property
    def errors(self) -> int:
        return sum(n for k, n in self.log.statuses.items() if not k.endswith((" 200", " 201", " 204")))

    @property
    def five_xx(self) -> int:
        return sum(n for k, n in self.log.statuses.items() if k.split()[1][0] == "5")

    @property
    def double(self) -> int:
        c = self.checks
        client_dups = sum(n - 1 for n in self.log.handed_out.values() if n > 1)
        return max(
            c["double_slots"],
            c["pairs_labelled_twice"],
            c["labels"] - c["distinct"],
            abs(c["labels"] - self.log.statuses["label 201"]),
            client_dups,
        )


def fmt(value: float) -> str:
    return "-" if math.isnan(value) else (f"{value:,.0f}" if value >= 100 else f"{value:.1f}")


def print_table(rows: list[Row]) -> None:
    base = next((r.rt_s for r in rows if r.db.startswith("postgres") and r.annotators == 1), None)
    head = (
        "| database | annotators | round trips/s | vs PG×1 | claim p50 / p95 / p99 ms "
        "| label p50 / p95 / p99 ms | errors | 5xx | double hand-outs | labels | ended by "
        "| server CPU ms/rt | PG CPU ms/rt | client CPU ms/rt |"
    )
    print(head)
    print("|" + "|".join(" --- " for _ in range(head.count("|") - 1)) + "|")
    for r in rows:
        claim = " / ".join(fmt(percentile(r.log.claim_ms, q)) for q in (50, 95, 99))
        label = " / ".join(fmt(percentile(r.log.label_ms, q)) for q in (50, 95, 99))
        ratio = f"{r.rt_s / base:.2f}×" if base else "-"
        per = max(r.log.round_trips, 1)
        pg = f"{r.pg_cpu_s * 1000 / per:.1f}" if r.pg_cpu_s is not None else "-"
        print(
            f"| {r.db} | {r.annotators} | **{r.rt_s:,.1f}** | {ratio} | {claim} | {label} "
            f"| {r.errors} | {r.five_xx} "
            f"| {r.double} | {r.checks['labels']:,} | {'queue empty' if r.log.exhausted else 'time'} "
            f"| {r.server_cpu_s * 1000 / per:.1f} | {pg} | {r.log.client_cpu_s * 1000 / per:.2f} |"
        )
    # No peer figures here: numbers from another run are not comparable with this one. Label Studio is
    # measured side by side, same client and same run, by bench/peer.sh (docs/benchmarks.md).
    print("\nPeer comparison: bench/peer.sh measures Label Studio and real-align side by side in one run.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="time bound per cell (default 15)")
    parser.add_argument("--pairs", type=int, default=8000, help="pairs seeded per cell (default 8,000)")
    parser.add_argument(
        "--annotators", default="1,10,50", help="concurrent annotators per cell (default 1,10,50)"
    )
    parser.add_argument("--db", default="postgres,sqlite", help="databases (default postgres,sqlite)")
    parser.add_argument(
        "--workers", type=int, default=2, help="uvicorn workers of `real-align api` (default 2)"
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a Postgres database to create and drop the benchmark database from",
    )
    parser.add_argument(
        "--lane", default="on", help="Postgres: on and/or off, repeats allowed (default on; see above)"
    )
    parser.add_argument(
        "--py-spy", type=Path, help="record the server with py-spy (raw collapsed stacks) per cell"
    )
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.annotators.split(",") if n.strip()]
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    lanes = [lane.strip() for lane in args.lane.split(",") if lane.strip()]
    if any(d not in ("postgres", "sqlite") for d in dbs) or not counts or min(counts) < 1:
        parser.error("--db takes postgres and/or sqlite; --annotators positive integers")
    if not lanes or any(lane not in ("on", "off") for lane in lanes):
        parser.error("--lane takes on and/or off")
    variants = [(db, lane) for db in dbs for lane in (lanes if db == "postgres" else ["on"])]

    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    load_start = os.getloadavg()
    print(
        f"bench.queue {datetime.now(UTC):%Y-%m-%d %H:%M UTC}; {os.cpu_count()} CPUs; load average "
        f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}; {args.pairs:,} pairs and "
        f"{args.seconds:g} s per cell; real-align api --workers {args.workers}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    pg_name = f"bench_queue_{os.getpid()}"
    pg_created = False
    rows: list[Row] = []
    admin_key = "real_bench_" + secrets.token_urlsafe(32)
    per_worker = math.ceil(max(counts) / args.workers)
    pool_size, overflow = per_worker + 5, per_worker  # connections open only as requests need them
    spy: subprocess.Popen[bytes] | None = None
    try:
        for variant, (db, lane) in enumerate(variants):
            name = f"{db} lane {lane}" if db == "postgres" and len(set(lanes)) > 1 else db
            if db == "postgres":
                url = create_pg_database(args.pg_admin_url, pg_name)
                pg_created = True
            else:
                url = f"sqlite:///{tmp / f'bench-{variant}.db'}"
            env = server_env(url, admin_key, pool_size, overflow, lane=lane == "on")
            migrated = subprocess.run(
                [str(VENV_BIN / "real-align"), "migrate"], env=env, cwd=tmp, capture_output=True, text=True
            )
            if migrated.returncode != 0:
                raise RuntimeError(f"real-align migrate failed:\n{migrated.stderr[-2000:]}")
            port = free_port()
            with server(env, port, args.workers, tmp, tmp / f"server-{variant}.log") as proc:
                for n in counts:
                    t0 = time.perf_counter()
                    project_id = seed(url, args.pairs, f"bench {name} x{n}")
                    keys = annotator_keys(port, admin_key, project_id, n, f"{variant}-{db}-x{n}")
                    seed_s = time.perf_counter() - t0
                    pids = process_tree(proc.pid)
                    cpu0 = sum(cpu_seconds(p) for p in pids)
                    pg0 = pg_backend_cpu(args.pg_admin_url, pg_name) if db == "postgres" else {}
                    if args.py_spy:
                        args.py_spy.mkdir(parents=True, exist_ok=True)
                        spy = subprocess.Popen(
                            [
                                str(VENV_BIN / "py-spy"),
                                "record",
                                "--pid",
                                str(proc.pid),
                                "--subprocesses",
                                "--format",
                                "raw",
                                "--duration",
                                str(int(args.seconds)),
                                "--rate",
                                "200",
                                "--output",
                                str(args.py_spy / f"{variant}-{db}-{n}.txt"),
                                "--nonblocking",
                            ],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                        )
                    cap = 2 * args.pairs + 10 * n
                    log = asyncio.run(run_cell(port, keys, project_id, n, args.seconds, cap))
                    server_cpu = sum(cpu_seconds(p) for p in process_tree(proc.pid)) - cpu0
                    pg_cpu = None
                    if db == "postgres":
                        pg1 = pg_backend_cpu(args.pg_admin_url, pg_name)
                        pg_cpu = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
                    if spy is not None:
                        with suppress(subprocess.TimeoutExpired):
                            spy.wait(timeout=30)
                        stop_process(spy)
                        spy = None
                    row = Row(
                        name, n, log, verify(url, project_id), server_cpu, pg_cpu, seed_s, os.getloadavg()[0]
                    )
                    rows.append(row)
                    print(
                        f"  {name} x{n}: {row.rt_s:,.1f} round trips/s over {log.wall_s:.1f} s, "
                        f"{log.round_trips:,} labels acknowledged, "
                        f"statuses {dict(sorted(log.statuses.items()))}, "
                        f"db {row.checks}, seeding {seed_s:.1f} s, load1 {row.load1:.2f}",
                        flush=True,
                    )
            if db == "postgres":
                drop_pg_database(args.pg_admin_url, pg_name)
                pg_created = False
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip the cleanup
        stop_process(spy)
        if pg_created:
            with suppress(Exception):
                drop_pg_database(args.pg_admin_url, pg_name)
        shutil.rmtree(tmp, ignore_errors=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if rows:
            print()
            print_table(rows)
            load_end = os.getloadavg()
            print(
                f"\nload average at the start "
                f"{load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f}, "
                f"at the end {load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f}; "
                f"total {time.monotonic() - started:.0f} s; REAL_DB_POOL_SIZE={pool_size} "
                f"REAL_DB_MAX_OVERFLOW={overflow} per worker"
            )
            print(
                "Target (issue 5): >= 250 round trips/s at 50 annotators, claim and label p99 < 400 ms, "
                "0 double hand-outs."
            )
            for r in rows:
                if r.annotators == 50:
                    p99 = max(percentile(r.log.claim_ms, 99), percentile(r.log.label_ms, 99))
                    met = r.rt_s >= 250 and p99 < 400 and r.double == 0 and r.five_xx == 0
                    print(
                        f"  {r.db} x50: {r.rt_s:,.1f} rt/s, worst p99 {fmt(p99)} ms, "
                        f"{r.double} double hand-outs: {'MET' if met else 'NOT MET'}"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
