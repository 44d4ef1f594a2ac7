"""Two versions of the export code, back to back on the same data: CPU per export and its parts (a benchmark).

    .venv/bin/python -m bench.export_ab --old DIR [--new DIR] [--pairs 20000] [--rounds 8]
                                        [--db postgres,sqlite] [--formats jsonl/standard,parquet/standard]
                                        [--text-chars 300]

--old and --new are source trees of the repository (--new defaults to this one; make the old one with
`git archive <commit> | tar -x -C DIR`). Per database one project of --pairs labelled pairs is seeded once
(`tests/exports/bulk.py`, as bench/export.py seeds: a Postgres database `bench_export_ab_<pid>` on
--pg-admin-url, dropped at the end, or a temporary SQLite file). Then, --rounds times, each format is exported
by the old tree and by the new one in turn, each in a fresh Python process started in that tree: it imports,
then times pass 1 (`snapshot.label_stats`) and pass 2 (`snapshot.export_rows` into the writer, through
`writers.Pipelined`, the bytes hashed and dropped) with `time.process_time` (all its threads), and reads the
Postgres backend's CPU from /proc (Postgres on this machine). No manifest, settle or storage: the passes only.

The table gives medians over the rounds and whether every file of a format had the same sha256 (old and new,
every round). Run it under `flock /tmp/bench.lock` on a shared machine, and read the load average it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from bench.queue import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import contextlib, hashlib, json, os, sys, time, uuid
from datetime import datetime
import app.db.models  # noqa: F401
import pyarrow, pyarrow.parquet  # noqa: F401
from sqlalchemy import text
from app.db.session import get_database
from app.exports import snapshot, writers
from app.exports.models import ExportRun

project, snapshot_at, fmt, style = sys.argv[1:5]
def backend_cpu(pid):
    if pid is None:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
class Drop:
    def write(self, data): pass
    def flush(self): pass
run = ExportRun(id=uuid.uuid4(), project_id=uuid.UUID(project), format=fmt, style=style, compression="none",
                filters=None, include_partial=False, snapshot_at=datetime.fromisoformat(snapshot_at))
db = get_database()
frozen = getattr(snapshot, "frozen_heap", contextlib.nullcontext)  # trees from before it have none
with snapshot.read_session(db) as session, frozen():
    pid = None
    if db.engine.dialect.name != "sqlite":
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar()
    cpu0, pg0 = time.process_time(), backend_cpu(pid)
    stats = snapshot.label_stats(session, run.project_id, run.snapshot_at, lambda: None)
    cpu1, pg1 = time.process_time(), backend_cpu(pid)
    tally, state = snapshot.Tally(), snapshot.StateBuilder()
    sink = writers.HashingSink(Drop())
    writer = writers.Pipelined(writers.open_writer(fmt, style, "none", sink))
    size = 10_000 if fmt == "parquet" else 500
    batch = []
    rows = snapshot.export_rows(session, run, stats, tally, lambda: None, wanted=1, state=state)
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            writer.write(batch)
            batch = []
    writer.write(batch)
    rows.close()
    writer.close()
    cpu2, pg2 = time.process_time(), backend_cpu(pid)
print(json.dumps({"rows": tally.rows, "cpu": cpu2 - cpu0, "pass1": cpu1 - cpu0, "pass2": cpu2 - cpu1,
                  "pg_pass2": pg2 - pg1, "sha256": sink.digest.hexdigest()}))
"""


def seed(kind: str, url: str, pairs: int, text_chars: int) -> tuple[str, str]:
    """Migrate and seed the database; the project id and snapshot time."""
    from app import migrate
    from app.config import get_settings
    from app.db import models  # noqa: F401
    from app.db.base import utcnow
    from app.db.session import get_database, reset_database
    from tests.exports.bulk import seed_pairs
    from tests.factories import make_project

    os.environ["REAL_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_database()
    migrate.upgrade(url)
    db = get_database()
    with db.session() as session:
        project = make_project(session, name="bench export ab").id
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        seed_pairs(connection, project, pairs, text_chars=text_chars)
    snapshot_at = utcnow().isoformat()
    reset_database()
    print(f"[{kind}] seeded {pairs:,} pairs", flush=True)
    return str(project), snapshot_at


def export(tree: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, cwd=tree, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{tree}: {done.stderr[-4000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--old", type=Path, required=True, help="the source tree to compare with")
    parser.add_argument("--new", type=Path, default=ROOT, help="the source tree to measure (default: this)")
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--db", default="postgres,sqlite")
    parser.add_argument("--formats", default="jsonl/standard,jsonl/conversational,parquet/standard")
    parser.add_argument("--text-chars", type=int, default=300)
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    args = parser.parse_args(argv)
    formats = [tuple(f.split("/")) for f in args.formats.split(",")]
    if any(len(f) != 2 for f in formats) or args.rounds < 1 or args.pairs < 1:
        parser.error("--formats takes format/style pairs; --rounds and --pairs positive integers")
    sys.path.insert(0, str(ROOT))
    os.environ.update(REAL_ENV="test", REAL_DB_STATEMENT_TIMEOUT_MS="0")
    os.environ.pop("REAL_BROKER_URL", None)
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    print(f"load average at the start: {Path('/proc/loadavg').read_text().split()[:3]}", flush=True)
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
        folder = Path(tempfile.mkdtemp(prefix="bench-export-ab-"))
        name = f"bench_export_ab_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        try:
            if kind == "postgres":
                url = create_pg_database(args.pg_admin_url, name)
            else:
                url = f"sqlite:///{folder / 'bench.db'}"
            os.environ["REAL_EXPORT_DIR"] = str(folder / "exports")
            project, snapshot_at = seed(kind, url, args.pairs, args.text_chars)
            env = {**os.environ, "REAL_DATABASE_URL": url}
            for _ in range(args.rounds):
                for fmt, style in formats:
                    for label, tree in trees.items():
                        out = export(tree, env, project, snapshot_at, fmt, style)
                        results.setdefault((kind, f"{fmt}/{style}", label), []).append(out)
        finally:
            if kind == "postgres":
                drop_pg_database(args.pg_admin_url, name)
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
    print()
    print(
        "| db | file | CPU s old → new | rows per CPU s old → new | pass 1 CPU s | pass 2 CPU s "
        "| Postgres CPU s, pass 2 | sha256 |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for kind, name in dict.fromkeys((k, n) for k, n, _ in results):
        old, new = results[(kind, name, "old")], results[(kind, name, "new")]

        def med(runs: list[dict[str, Any]], key: str) -> float:
            return statistics.median(r[key] for r in runs)

        same = len({r["sha256"] for r in old + new}) == 1
        rows = old[0]["rows"]
        print(
            f"| {kind} | {name} | {med(old, 'cpu'):.3f} → {med(new, 'cpu'):.3f} "
            f"| {rows / med(old, 'cpu'):,.0f} → {rows / med(new, 'cpu'):,.0f} "
            f"| {med(old, 'pass1'):.3f} → {med(new, 'pass1'):.3f} "
            f"| {med(old, 'pass2'):.3f} → {med(new, 'pass2'):.3f} "
            f"| {med(old, 'pg_pass2'):.2f} → {med(new, 'pg_pass2'):.2f} | {'same' if same else 'DIFFERENT'} |"
        )
    print(f"\n{args.rounds} rounds, medians; {args.pairs:,} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
