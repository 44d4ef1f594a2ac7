"""Exports stream: a subprocess's peak memory exporting 100k pairs is about that of exporting 20k.

One SQLite file (the fastest to seed: set-based SQL, seconds) holds 100k labelled pairs, labelled one after
another. Exports of the same data differ only in snapshot_at: as of the 20,000th pair and as of the last.
Each (JSONL and Parquet, both sizes) runs in a fresh process of its own, all at once, and reports its peak RSS
(ru_maxrss, per process). Holding the rows would cost over 100 MB more at 100k (each row is a dict of
18 fields with ~400 bytes of text: about 1.5 KB in memory); streaming keeps a few dozen bytes per pair
(label counts, Dawid–Skene posteriors) besides one row batch. About 25 s in all, most of it the 100k exports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.auth.context import BOOTSTRAP_ADMIN
from app.exports import service
from app.exports.schemas import ExportRequest
from tests.exports.bulk import T0, seed_pairs
from tests.factories import make_project

SMALL, LARGE = 20_000, 100_000
# Growth allowed from 20k to 100k pairs: per-pair arrays and Dawid–Skene's per-label work arrays need about
# 25 MB at 100k (about 11–15 MB measured); rows held in memory would need about twice the margin.
MARGIN_MB = 60

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import app.db.models  # noqa: F401  (every table, as in a worker)
    from app.exports import tasks
    from app.db.session import get_database
    from app.exports.models import ExportRun
    tasks.run_export(sys.argv[1])
    with get_database().session() as session:
        run = session.get_one(ExportRun, __import__("uuid").UUID(sys.argv[1]))
        assert run.status == "succeeded", run.error
    print(json.dumps({"rows": run.rows, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
    """
)


def peaks(env: dict[str, str], jobs: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run each export in its own process, all at once (peaks are per process); their reports."""
    started = {
        name: subprocess.Popen(
            [sys.executable, "-c", CHILD, export_id],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for name, export_id in jobs.items()
    }
    reports = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err[-3000:]
        reports[name] = dict(json.loads(out.strip().splitlines()[-1]))
    return reports


@pytest.mark.timeout(300)
def test_peak_memory_does_not_grow_with_rows(sqlite_app: Any, recorded_tasks: Any, tmp_path: Path) -> None:
    db = sqlite_app
    with db.session() as session:
        project = make_project(session)
        pid = project.id
    with db.engine.begin() as connection:
        seed_pairs(connection, pid, LARGE, text_chars=100)
    jobs: dict[str, str] = {}
    with db.session() as session:
        project = session.get(type(project), pid)
        for size in (SMALL, LARGE):
            # Pair g's labels are at T0 + 2g seconds (and + 1 s for a second label).
            snapshot = T0 + timedelta(seconds=2 * size + 1)
            for fmt in ("jsonl", "parquet"):
                request = ExportRequest(format=fmt, snapshot_at=snapshot)
                jobs[f"{fmt}-{size}"] = str(service.create(session, BOOTSTRAP_ADMIN, project, request).id)
    env = {**os.environ, "REAL_DATABASE_URL": db.settings.database_url, "REAL_EXPORT_DIR": str(tmp_path)}
    reports = peaks(env, jobs)
    for fmt in ("jsonl", "parquet"):
        small, large = reports[f"{fmt}-{SMALL}"], reports[f"{fmt}-{LARGE}"]
        assert large["rows"] > 4 * small["rows"] > 0
        growth_mb = (large["peak_kb"] - small["peak_kb"]) / 1024
        assert growth_mb < MARGIN_MB, (fmt, small, large)
