"""Many annotators at once against a real server: no double hand-out, budget held, retries idempotent."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.main import create_app
from app.queue.models import Assignment, Label
from tests.conftest import ADMIN_KEY
from tests.factories import grant_annotator, make_pairs, make_project
from tests.live_server import serve

pytestmark = pytest.mark.concurrency

THREADS = 20


def _race(base_url: str, project_id: Any, annotators: list[str]) -> list[httpx.Response]:
    for annotator in annotators:
        grant_annotator(annotator, project_id)
    barrier = threading.Barrier(len(annotators))

    def one(annotator: str) -> httpx.Response:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as c:
            barrier.wait()
            return c.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})

    with ThreadPoolExecutor(len(annotators)) as pool:
        return list(pool.map(one, annotators))


def _check_claims(db: Any, base_url: str, pairs: int, budget: int | None) -> None:
    with db.session() as session:
        project = make_project(session, budget=budget)
        make_pairs(session, project, pairs)
        project_id = project.id
    responses = _race(base_url, project_id, [f"annotator-{n}" for n in range(THREADS)])
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 204}, statuses
    claimed = [r.json() for r in responses if r.status_code == 200]
    expected = min(THREADS, pairs, budget if budget is not None else THREADS)
    assert len(claimed) == expected
    assert len({c["assignment_id"] for c in claimed}) == expected
    pair_keys = {frozenset((c["response_a"]["id"], c["response_b"]["id"])) for c in claimed}
    assert len(pair_keys) == expected, "a pair was handed to two annotators at once"
    with db.session() as session:
        live = session.execute(
            select(Assignment.slot_id, func.count()).group_by(Assignment.slot_id).having(func.count() > 1)
        ).all()
        assert live == []
    # Ten identical label submits at once: one row, identical bodies.
    assignment_id = claimed[0]["assignment_id"]
    barrier = threading.Barrier(10)

    def submit(_: int) -> httpx.Response:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=60
        ) as c:
            barrier.wait()
            return c.post(f"/v1/assignments/{assignment_id}/label", json={"choice": "a"})

    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(submit, range(10)))
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    assert len({r.text for r in results}) == 1
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 1


class TestPostgres:
    def test_twenty_claimers_get_twenty_distinct_pairs(self, db: Any) -> None:
        with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
            _check_claims(db, base_url, pairs=50, budget=None)

    def test_budget_is_never_exceeded_under_a_race(self, db: Any) -> None:
        with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
            _check_claims(db, base_url, pairs=50, budget=7)


class TestSQLite:
    def test_twenty_claimers_on_the_embedded_default(self, sqlite_app: Any) -> None:
        with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
            _check_claims(sqlite_app, base_url, pairs=50, budget=None)

    def test_budget_on_the_embedded_default(self, sqlite_app: Any) -> None:
        with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
            _check_claims(sqlite_app, base_url, pairs=50, budget=7)
