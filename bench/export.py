"""DPO export throughput and peak memory per format (a benchmark, not a test).

    .venv/bin/python -m bench.export [--pairs 200000] [--db postgres,sqlite] [--text-chars 300]
                                     [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]

For each database it creates a dedicated one (Postgres: `bench_export_<pid>` on --pg-admin-url, dropped at the
end; SQLite: a file in a temporary folder), migrates it, and seeds one project of --pairs labelled pairs with
set-based SQL (`tests/exports/bulk.py`: prompt and responses padded to --text-chars characters, every 4th
pair labelled twice so Dawid–Skene has overlap, about 92% of the pairs with a winner). Then, per format, it
queues an export of the same snapshot and runs `app.exports.tasks.run_export` in a fresh Python process,
which reports its wall time, its CPU time (the part that does not depend on what else the machine runs) and
peak RSS (ru_maxrss). A process that imports the same modules and exports
nothing gives the baseline RSS. The table: rows written, seconds, rows/s, peak RSS, peak over the baseline,
file size. Every format's sha256 is printed, so a rerun can be compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.queue import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parent.parent
FORMATS = [
    ("jsonl", "standard", "none"),
    ("jsonl", "standard", "gzip"),
    ("jsonl", "conversational", "none"),
    ("parquet", "standard", "none"),
    ("parquet", "standard", "gzip"),
    ("parquet", "conversational", "none"),
]

CHILD = """
import json, resource, sys, time, uuid
import app.db.models  # noqa: F401
from app.exports import tasks
from app.db.session import get_database
from app.exports.models import ExportRun
import pyarrow, pyarrow.parquet  # noqa: F401  (the baseline imports what an export imports)
out = {}
if sys.argv[1:]:
    started, cpu = time.perf_counter(), time.process_time()
    tasks.run_export(sys.argv[1])
    out["seconds"] = time.perf_counter() - started
    out["cpu"] = time.process_time() - cpu
    with get_database().session() as session:
        run = session.get_one(ExportRun, uuid.UUID(sys.argv[1]))
        assert run.status == "succeeded", run.error
        out.update(rows=run.rows, bytes=run.bytes, sha256=run.sha256)
out["peak_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(out))
"""


def child(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-4000:])
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def run_database(kind: str, url: str, export_dir: Path, pairs: int, text_chars: int) -> list[dict[str, Any]]:
    os.environ["REAL_DATABASE_URL"] = url
    os.environ["REAL_EXPORT_DIR"] = str(export_dir)
    os.environ.pop("REAL_BROKER_URL", None)
    os.environ["REAL_ENV"] = "test"
    from app import background, migrate
    from app.auth.context import BOOTSTRAP_ADMIN
    from app.config import get_settings
    from app.db import models  # noqa: F401
    from app.db.base import utcnow
    from app.db.session import get_database, reset_database
    from app.exports import service
    from app.exports.schemas import ExportRequest
    from app.projects.models import Project
    from tests.exports.bulk import seed_pairs
    from tests.factories import make_project

    get_settings.cache_clear()
    reset_database()
    background.dispatch = lambda name, kwargs: None  # type: ignore[assignment]  # run here, one at a time
    migrate.upgrade(url)
    db = get_database()
    with db.session() as session:
        pid = make_project(session, name="bench export").id
    started = time.perf_counter()
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":  # seeding 200k pairs can outlast the 30 s default
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        seed_pairs(connection, pid, pairs, text_chars=text_chars)
    seeded = time.perf_counter() - started
    print(f"[{kind}] seeded {pairs:,} pairs in {seeded:.1f} s", flush=True)
    env = {**os.environ}
    baseline = child(env)["peak_kb"] / 1024
    results = []
    with db.session() as session:
        snapshot = utcnow()
        runs = [
            service.create(
                session,
                BOOTSTRAP_ADMIN,
                session.get_one(Project, pid),
                ExportRequest(format=fmt, style=style, compression=compression, snapshot_at=snapshot),
            ).id
            for fmt, style, compression in FORMATS
        ]
    for (fmt, style, compression), export_id in zip(FORMATS, runs, strict=True):
        out = child(env, str(export_id))
        peak = out["peak_kb"] / 1024
        results.append(
            {
                "db": kind,
                "format": fmt + (".gz" if compression == "gzip" and fmt == "jsonl" else ""),
                "codec": "gzip" if compression == "gzip" and fmt == "parquet" else "",
                "style": style,
                "rows": out["rows"],
                "seconds": out["seconds"],
                "cpu": out["cpu"],
                "rows_per_s": out["rows"] / out["seconds"],
                "peak_mb": peak,
                "over_baseline_mb": peak - baseline,
                "file_mb": out["bytes"] / 2**20,
                "sha256": out["sha256"],
            }
        )
        print(f"[{kind}] {fmt}/{style}/{compression}: {out['seconds']:.1f} s", flush=True)
    print(f"[{kind}] baseline RSS (imports, no export): {baseline:.0f} MB", flush=True)
    reset_database()
    return results


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| db | file | style | rows | seconds | rows/s | CPU s | rows per CPU s | peak RSS (MB) "
        "| over baseline (MB) | file (MB) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        name = r["format"] + (f" ({r['codec']} pages)" if r["codec"] else "")
        lines.append(
            f"| {r['db']} | {name} | {r['style']} | {r['rows']:,} | {r['seconds']:.1f} | "
            f"{r['rows_per_s']:,.0f} | {r['cpu']:.1f} | {r['rows'] / r['cpu']:,.0f} | {r['peak_mb']:.0f} | "
            f"{r['over_baseline_mb']:.0f} | "
            f"{r['file_mb']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=200_000, help="labelled pairs seeded (default 200,000)")
    parser.add_argument("--db", default="postgres,sqlite", help="databases (default postgres,sqlite)")
    parser.add_argument("--text-chars", type=int, default=300, help="padding of each text (default 300)")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a Postgres database to create and drop the benchmark database from",
    )
    args = parser.parse_args(argv)
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    if any(d not in ("postgres", "sqlite") for d in dbs) or args.pairs < 1:
        parser.error("--db takes postgres and/or sqlite; --pairs a positive integer")
    sys.path.insert(0, str(ROOT))
    results: list[dict[str, Any]] = []
    for kind in dbs:
        folder = Path(tempfile.mkdtemp(prefix="bench-export-"))
        name = f"bench_export_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        try:
            if kind == "postgres":
                url = create_pg_database(args.pg_admin_url, name)
            else:
                url = f"sqlite:///{folder / 'bench.db'}"
            results += run_database(kind, url, folder / "exports", args.pairs, args.text_chars)
        finally:
            if kind == "postgres":
                drop_pg_database(args.pg_admin_url, name)
            shutil.rmtree(folder, ignore_errors=True)
    print()
    print(table(results))
    print()
    for r in results:
        print(f"{r['db']} {r['format']} {r['codec'] or '-'} {r['style']}: sha256 {r['sha256']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
