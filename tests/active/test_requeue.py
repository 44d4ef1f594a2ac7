"""Asking about a labelled pair again: one more label (spent from the budget, capped per pair, never to the
same annotator, handed out first) or a review; the same steps on Postgres and on the SQLite default."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.main import create_app
from app.pairs.models import Pair
from app.queue import budget
from app.queue import repository as queue_repository
from tests.conftest import ADMIN_KEY
from tests.factories import grant_annotator, make_pairs, make_project


def claim(client: Any, project_id: Any, annotator: str) -> Any:
    grant_annotator(annotator, project_id)  # an admin claims only for a real annotator
    return client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})


def pair_of(claimed: dict[str, Any], pairs: dict[frozenset[str], Any]) -> Any:
    """The pair a claim handed out (a claim names the responses, not the pair)."""
    return pairs[frozenset((claimed["response_a"]["id"], claimed["response_b"]["id"]))]


def label(client: Any, assignment_id: str, choice: str) -> Any:
    return client.post(f"/v1/assignments/{assignment_id}/label", json={"choice": choice})


def requeue(client: Any, project_id: Any, pair_id: Any, action: str, **extra: Any) -> Any:
    return client.post(f"/v1/projects/{project_id}/pairs/{pair_id}/requeue", json={"action": action, **extra})


def scenario(client: Any, database: Any) -> None:
    """Budget 3, one label per pair, at most one extra label per pair, three pairs."""
    with database.session() as s:
        project = make_project(s, budget=3, max_extra_labels_per_pair=1)
        made = make_pairs(s, project, 3, priorities=[0.9, 0.5, 0.1])
        pid, first, second, third = project.id, made[0].id, made[1].id, made[2].id
        pairs = {frozenset((str(p.response_a_id), str(p.response_b_id))): p.id for p in made}

    # Nothing to ask about before a label.
    refused = requeue(client, pid, first, "label")
    assert refused.status_code == 409
    assert refused.json()["errors"][0]["field"] == "pair_id"

    took = claim(client, pid, "ann1").json()
    assert pair_of(took, pairs) == first
    assert label(client, took["assignment_id"], "a").status_code == 201

    asked = requeue(client, pid, first, "label")
    assert asked.status_code == 200, asked.text
    body = asked.json()
    assert (body["changed"], body["extra_labels"], body["extra_label_pending"]) == (True, 1, True)
    assert (body["budget"], body["budget_committed"]) == (3, 2)
    # Budget 3 = pair one's label + its extra + one more pair: the dashboard counts the extra too.
    assert client.get(f"/v1/projects/{pid}/dashboard").json()["queue"]["budget_pairs_left"] == 1
    # A retry while the label is awaited changes nothing and spends nothing.
    again = requeue(client, pid, first, "label").json()
    assert (again["changed"], again["extra_labels"], again["budget_committed"]) == (False, 1, 2)

    # Not to the annotator who labelled it: ann1 gets the next new pair.
    assert pair_of(claim(client, pid, "ann1").json(), pairs) == second
    # Another annotator gets the asked-for label before any new pair.
    extra = claim(client, pid, "ann2").json()
    assert pair_of(extra, pairs) == first
    # The budget is committed in full (2 pairs + 1 extra label = 3): no new pair is released.
    spent = claim(client, pid, "ann3")
    assert spent.status_code == 204
    assert spent.headers["Real-Queue-Reason"] == "budget_spent"
    assert label(client, extra["assignment_id"], "b").status_code == 201

    # The cap: one extra label per pair.
    capped = requeue(client, pid, first, "label")
    assert capped.status_code == 409
    assert "max_extra_labels_per_pair" in capped.json()["detail"]
    assert client.patch(f"/v1/projects/{pid}", json={"max_extra_labels_per_pair": 2}).status_code == 200
    # Now the budget refuses: 3 of 3 labels are committed.
    broke = requeue(client, pid, first, "label")
    assert broke.status_code == 409
    assert "budget" in broke.json()["detail"]
    assert client.patch(f"/v1/projects/{pid}", json={"max_extra_labels_per_pair": None}).status_code == 422

    # A review request puts the pair (two labels, split) in the review queue; a retry changes nothing.
    reviewed = requeue(client, pid, first, "review", note="suspected flip")
    assert reviewed.status_code == 200
    assert reviewed.json()["changed"] is True
    assert reviewed.json()["review_requested_at"] is not None
    assert requeue(client, pid, first, "review").json()["changed"] is False
    queue = client.get(f"/v1/projects/{pid}/review").json()
    assert str(first) in {item["pair_id"] for item in queue}

    # Input errors name the field; other projects' pairs are not found.
    wrong = requeue(client, pid, first, "relabel")
    assert wrong.status_code == 422
    assert wrong.json()["errors"][0]["field"].endswith("action")
    with database.session() as s:
        other = make_project(s).id
    assert requeue(client, other, first, "label").status_code == 404
    with database.session() as s:
        pair = s.get_one(Pair, first)
        assert (pair.labels_count, pair.extra_labels) == (2, 1)
        assert pair.review_request_note == "suspected flip"
        assert budget.committed(queue_repository.spent(s, pid), 1) == 3
        assert s.scalars(select(Pair.id).where(Pair.id == third, Pair.released_at.is_(None))).one() == third


@pytest.mark.integration
def test_requeue_on_postgres(client: Any, db: Any) -> None:
    scenario(client, db)


@pytest.fixture
def sqlite_client(sqlite_app: Any) -> Iterator[Any]:
    app = create_app(admin_key=ADMIN_KEY, start_runner=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


def test_requeue_on_the_sqlite_default(sqlite_client: Any, sqlite_app: Any) -> None:
    scenario(sqlite_client, sqlite_app)


@pytest.mark.integration
def test_gold_pairs_are_not_requeued(client: Any, db: Any) -> None:
    with db.session() as s:
        project = make_project(s)
        pair = make_pairs(s, project, 1)[0]
        pair.gold_answer = "a"
        pair.labels_count = 1
        pid, pair_id = project.id, pair.id
    refused = requeue(client, pid, pair_id, "label")
    assert refused.status_code == 409
    assert "gold" in refused.json()["detail"]
