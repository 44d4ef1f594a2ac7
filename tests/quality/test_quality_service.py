"""Quality through the API: agreement and aggregates stored per pair, review overriding, gold checks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.api.clock import get_now
from app.db.base import utcnow
from app.exports.tasks import run_export
from app.pairs.models import Pair
from app.projects.models import Project
from app.prompts.models import Response
from app.quality.agreement import krippendorff_alpha_nominal
from app.quality.tasks import aggregate_project
from tests.factories import grant_annotator, make_pairs, make_project


def claim(client: Any, project_id: Any, annotator: str) -> Any:
    grant_annotator(annotator, project_id)  # an admin claims only for a real annotator
    return client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})


def vote(client: Any, project_id: Any, annotator: str, canonical: str) -> Any:
    """Claim as `annotator` and answer in pair terms (undoing the random screen order)."""
    assignment = claim(client, project_id, annotator).json()
    pair_ids = {assignment["response_a"]["id"], assignment["response_b"]["id"]}
    if canonical in ("a", "b"):
        wanted = min(pair_ids) if canonical == "a" else max(pair_ids)  # response_a_id < response_b_id
        screen = "a" if assignment["response_a"]["id"] == wanted else "b"
    else:
        screen = canonical
    stored = client.post(f"/v1/assignments/{assignment['assignment_id']}/label", json={"choice": screen})
    assert stored.status_code == 201
    return stored.json()


@pytest.fixture
def overlap(client: Any, session: Any, recorded_tasks: list[Any]) -> Any:
    """Twelve labels on four pairs; tasks are recorded, not run, so aggregation happens when a test says."""
    project = make_project(session, annotations_per_pair=3, gold_rate=0.0)
    pairs = make_pairs(session, project, 4, priorities=[0.9, 0.8, 0.7, 0.6])
    session.commit()
    # Pair by pair (highest priority first): unanimous, 2-1, split three ways, unanimous tie.
    plan = [("a", "a", "a"), ("a", "a", "b"), ("a", "b", "tie"), ("tie", "tie", "tie")]
    for votes in plan:
        for annotator, canonical in zip(("ann1", "ann2", "ann3"), votes, strict=True):
            vote(client, project.id, annotator, canonical)
    return project, pairs, plan


class TestQuality:
    def test_agreement_and_aggregates(
        self, client: Any, overlap: Any, session: Any, recorded_tasks: list[Any]
    ) -> None:
        project, pairs, plan = overlap
        # Twelve labels inside one debounce window ask for one aggregation.
        assert recorded_tasks == [("quality.aggregate", {"project_id": str(project.id)})]
        before = client.get(f"/v1/projects/{project.id}/quality").json()
        assert (before["computed_at"], before["stale"], before["labels"]) == (None, True, 0)
        assert aggregate_project(str(project.id)) is True
        quality = client.get(f"/v1/projects/{project.id}/quality").json()
        assert quality["computed_at"] is not None
        assert quality["stale"] is False
        expected_alpha = krippendorff_alpha_nominal(
            [(n, f"ann{i + 1}", v) for n, votes in enumerate(plan) for i, v in enumerate(votes)]
        )
        assert quality["krippendorff_alpha"] == pytest.approx(expected_alpha)
        assert (quality["labels"], quality["pairs_labelled"], quality["pairs_with_overlap"]) == (12, 4, 4)
        assert quality["fleiss_kappa"]["raters"] == 3
        assert len(quality["cohen_kappa"]) == 3
        assert quality["dawid_skene"] is not None
        stored = {p.id: p for p in session.scalars(select(Pair).where(Pair.project_id == project.id))}
        for pair in stored.values():
            session.refresh(pair)
        assert [stored[p.id].outcome for p in pairs] == ["a", "a", "undecided", "tie"]
        assert stored[pairs[1].id].agreement == pytest.approx(2 / 3)
        assert stored[pairs[0].id].ds_choice == "a"
        assert sum(stored[pairs[0].id].ds_posterior.values()) == pytest.approx(1.0, abs=1e-5)

    def test_review_queue_and_verdict_override(
        self, client: Any, overlap: Any, db: Any, recorded_tasks: list[Any]
    ) -> None:
        project, pairs, _ = overlap
        aggregate_project(str(project.id))
        queue = client.get(f"/v1/projects/{project.id}/review").json()
        # The three-way split first (lowest agreement), the 2-1 pair (2/3) is above the 0.6 default.
        assert [item["pair_id"] for item in queue] == [str(pairs[2].id)]
        reviewed = client.post(
            f"/v1/projects/{project.id}/pairs/{pairs[2].id}/review",
            json={"verdict": "b", "note": "b follows the instruction"},
        )
        assert reviewed.status_code == 201
        assert client.get(f"/v1/projects/{project.id}/review").json() == []
        export = client.post(f"/v1/projects/{project.id}/exports").json()
        run_export(export["id"])
        lines = [json.loads(x) for x in client.get(f"/v1/exports/{export['id']}/file").text.splitlines()]
        by_pair = {line["pair_id"]: line for line in lines}
        assert set(by_pair) == {str(pairs[0].id), str(pairs[1].id), str(pairs[2].id)}
        with db.session() as s:
            response_b = s.get(Response, pairs[2].response_b_id)
            assert by_pair[str(pairs[2].id)]["chosen"] == response_b.text  # response_b, by the verdict
        assert "pair.reviewed" in [e["action"] for e in client.get("/v1/audit").json()["items"]]


class TestGold:
    def test_gold_is_mixed_in_scored_flagged_and_never_budgeted(self, client: Any, session: Any) -> None:
        project = make_project(session, budget=2, gold_rate=1.0, gold_min_accuracy=0.7)
        pairs = make_pairs(session, project, 6)
        session.commit()
        gold = pairs[3:6]
        for pair in gold:
            marked = client.put(f"/v1/projects/{project.id}/pairs/{pair.id}/gold", json={"answer": "a"})
            assert marked.json()["gold_answer"] == "a"
        # gold_rate 1: the first claims are the three gold pairs, then ordinary pairs up to the budget.
        answers = ["a", "b", "b"]  # one right, two wrong
        for canonical in answers:
            labelled = vote(client, project.id, "sloppy", canonical)
            assert labelled["pair_id"] in {str(p.id) for p in gold}
        vote(client, project.id, "sloppy", "a")
        vote(client, project.id, "sloppy", "a")
        spent = claim(client, project.id, "sloppy")
        assert spent.headers["Real-Queue-Reason"] == "budget_spent"
        stats = client.get(f"/v1/projects/{project.id}/stats").json()
        assert (stats["labels"], stats["gold_labels"], stats["budget_remaining"]) == (2, 3, 0)
        annotator = client.get(f"/v1/projects/{project.id}/annotators").json()[0]
        assert (annotator["gold_answered"], annotator["flagged"]) == (3, True)
        assert annotator["gold_accuracy"] == pytest.approx(1 / 3)
        assert annotator["labels"] == 5


def test_annotator_timing_and_skips(client: Any, session: Any) -> None:
    project = make_project(session, gold_rate=0.0)
    make_pairs(session, project, 3)
    session.commit()
    start = utcnow()
    for n, seconds in enumerate([10, 30]):
        client.app.dependency_overrides[get_now] = lambda s=start + timedelta(seconds=100 * n): s
        assignment = claim(client, project.id, "timed").json()["assignment_id"]
        client.app.dependency_overrides[get_now] = lambda s=start + timedelta(seconds=100 * n + seconds): s
        client.post(f"/v1/assignments/{assignment}/label", json={"choice": "a"})
    skipped = claim(client, project.id, "timed").json()["assignment_id"]
    client.post(f"/v1/assignments/{skipped}/skip")
    stats = client.get(f"/v1/projects/{project.id}/annotators").json()[0]
    assert stats["median_seconds_per_label"] == pytest.approx(20.0, abs=0.5)
    assert (stats["labels"], stats["skips"]) == (2, 1)
    assert stats["skip_rate"] == pytest.approx(1 / 3)


class TestAggregationOnSqlite:
    def test_reading_the_labels_does_not_hold_the_write_lock(self, sqlite_app: Any) -> None:
        # Claims and labels wait for SQLite's single write lock; the aggregation reads (and computes) in a
        # read-only unit of work, so a label can commit meanwhile.
        with sqlite_app.session() as session:
            project = make_project(session)
            project_id = project.id
        with sqlite_app.read_session() as reading:
            assert reading.get(Project, project_id) is not None
            writer = sqlite_app.engine.raw_connection()
            try:
                cursor = writer.cursor()
                cursor.execute("PRAGMA busy_timeout = 0")  # fail at once instead of waiting
                cursor.execute("BEGIN IMMEDIATE")
                cursor.execute("UPDATE project SET name = 'renamed while reading'")
                cursor.execute("COMMIT")
            finally:
                writer.close()
