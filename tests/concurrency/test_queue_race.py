"""50 annotators × claim→label until 2,000 pairs are done, against a real server, on Postgres and SQLite."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from app.db.session import get_database, reset_database
from app.main import create_app
from app.queue.models import Label
from tests.conftest import ADMIN_KEY
from tests.factories import grant_annotator, make_pairs, make_project
from tests.live_server import serve

# Minutes on a loaded two-core machine: 4,000+ requests through one in-process server.
pytestmark = [pytest.mark.concurrency, pytest.mark.timeout(900)]

ANNOTATORS = 50
PAIRS = 2_000


def run_race(db: Any, annotations_per_pair: int = 1, pairs: int = PAIRS, *, own_keys: bool = False) -> None:
    """Claim -> label until the queue is empty; with own_keys, each annotator uses its own API key (on
    Postgres the one-statement path), else the bootstrap admin claims on each one's behalf."""
    with db.session() as session:
        project = make_project(session, annotations_per_pair=annotations_per_pair)
        make_pairs(session, project, pairs)
        project_id = project.id
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
        keys = [ADMIN_KEY] * ANNOTATORS
        for n in range(ANNOTATORS):
            grant_annotator(f"ann-{n}", project_id)
        if own_keys:
            with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as admin:
                keys = [
                    admin.post(
                        "/v1/keys",
                        json={"role": "annotator", "name": f"ann-{n}", "projects": [str(project_id)]},
                    ).json()["key"]
                    for n in range(ANNOTATORS)
                ]
        barrier = threading.Barrier(ANNOTATORS)

        def annotate(n: int) -> int:
            done = 0
            body = None if own_keys else {"annotator": f"ann-{n}"}
            with httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {keys[n]}"}, timeout=60
            ) as c:
                barrier.wait()
                while True:
                    claim = c.post(f"/v1/projects/{project_id}/queue/claim", json=body)
                    with lock:
                        statuses[claim.status_code] += 1
                    if claim.status_code != 200:
                        return done
                    stored = c.post(
                        f"/v1/assignments/{claim.json()['assignment_id']}/label", json={"choice": "a"}
                    )
                    with lock:
                        statuses[stored.status_code] += 1
                    done += 1

        with ThreadPoolExecutor(ANNOTATORS) as pool:
            per_annotator = list(pool.map(annotate, range(ANNOTATORS)))
    assert not any(code >= 500 for code in statuses), statuses
    assert statuses[201] == pairs * annotations_per_pair
    assert sum(per_annotator) == pairs * annotations_per_pair
    with db.engine.connect() as conn:
        labels = conn.scalar(select(func.count()).select_from(Label))
        distinct = conn.scalar(
            text("SELECT COUNT(*) FROM (SELECT DISTINCT pair_id, annotator FROM label) AS d")
        )
        # Every label came through its own slot lease: no slot was labelled twice.
        double = conn.scalar(
            text(
                "SELECT COUNT(*) FROM (SELECT a.slot_id FROM label l JOIN assignment a "
                "ON a.id = l.assignment_id GROUP BY a.slot_id HAVING COUNT(*) > 1) AS d"
            )
        )
    assert labels == distinct == pairs * annotations_per_pair
    assert double == 0


@pytest.fixture
def big_pool(override_settings: Any) -> None:
    # 50 annotators at once: the server's threads each need a connection.
    override_settings(db_pool_size=60, db_max_overflow=10, rate_limit_per_minute=10**9)
    reset_database()


def test_race_on_postgres(db: Any, big_pool: None) -> None:
    run_race(get_database(), own_keys=True)


def test_race_with_overlap_on_postgres(db: Any, big_pool: None) -> None:
    run_race(get_database(), annotations_per_pair=2, pairs=300)


def test_race_on_the_sqlite_default(sqlite_app: Any, big_pool: None) -> None:
    run_race(get_database())
