"""The dashboard's JSON on the real Postgres: every number checked against labels, leases, exports and fits
made here at chosen instants (the API's clock is overridden, so claims and labels take the real path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.active.models import RewardModelFit
from app.api.clock import get_now
from app.quality.agreement import fleiss_kappa, krippendorff_alpha_nominal
from app.quality.tasks import aggregate_project
from tests.exports.helpers import run_export
from tests.factories import grant_annotator, make_pairs, make_project

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)  # on the hour: buckets of an hour start here
NOW = T0 + timedelta(hours=2, minutes=30)

# (minute after T0, annotator, pair index, choice in pair terms): two labels per pair.
PLAN = [
    (5, "ann1", 0, "a"),
    (10, "ann2", 0, "a"),
    (15, "ann1", 1, "a"),
    (20, "ann2", 1, "b"),
    (130, "ann1", 2, "tie"),
    (135, "ann2", 2, "tie"),
]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Clock:
    """The API's clock, moved by the test."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def set(self, moment: datetime) -> None:
        self.client.app.dependency_overrides[get_now] = lambda: moment


def claim(client: Any, project_id: Any, annotator: str) -> dict[str, Any]:
    grant_annotator(annotator, project_id)  # an admin claims only for a real annotator
    response = client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def shown(assignment: dict[str, Any]) -> set[str]:
    return {assignment["response_a"]["id"], assignment["response_b"]["id"]}


def responses_of(pair: Any) -> set[str]:
    return {str(pair.response_a_id), str(pair.response_b_id)}


def answer(client: Any, assignment: dict[str, Any], side: str) -> dict[str, Any]:
    """Answer in pair terms, undoing the random screen order."""
    first, second = assignment["response_a"]["id"], assignment["response_b"]["id"]
    if side in ("a", "b"):
        wanted = min(first, second) if side == "a" else max(first, second)  # response_a_id < response_b_id
        side = "a" if first == wanted else "b"
    stored = client.post(f"/v1/assignments/{assignment['assignment_id']}/label", json={"choice": side})
    assert stored.status_code == 201, stored.text
    body: dict[str, Any] = stored.json()
    return body


@pytest.fixture
def labelled(client: Any, session: Any, db: Any, recorded_tasks: list[Any]) -> Iterator[Any]:
    """Seven pairs (the last a gold check) of a project with a budget of 10 labels and 2 labels a pair:
    PLAN's six labels, an expired lease and a live one on pair 3, an export, a schedule, two fits."""
    project = make_project(session, budget=10, annotations_per_pair=2, gold_rate=0.0)
    pairs = make_pairs(session, project, 7, priorities=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    session.commit()
    clock = Clock(client)
    marked = client.put(f"/v1/projects/{project.id}/pairs/{pairs[6].id}/gold", json={"answer": "a"})
    assert marked.status_code == 200
    for minute, annotator, index, side in PLAN:
        clock.set(at(minute))
        assignment = claim(client, project.id, annotator)
        assert shown(assignment) == responses_of(pairs[index])
        answer(client, assignment, side)
    clock.set(at(139))
    expired = claim(client, project.id, "ann4")  # lease of 600 s: ends at 12:29, before NOW
    clock.set(at(145))
    live = claim(client, project.id, "ann3")  # ends at 12:35
    assert shown(expired) == shown(live) == responses_of(pairs[3])
    export = run_export(db, project.id)
    assert (
        client.put(f"/v1/projects/{project.id}/export-schedule", json={"every_seconds": 3600}).status_code
        == 200
    )
    for version, labels, accuracy in [(1, 4, 0.5), (2, 6, 0.75)]:
        session.add(
            RewardModelFit(
                project_id=project.id,
                version=version,
                fitted_at=at(60 * version),
                embedding_model=project.embedding_model,
                features="diff",
                l2=1.0,
                pairs_used=labels // 2,
                labels_used=labels,
                cv_folds=2,
                cv_accuracy=accuracy,
                cv_log_loss=0.6,
                dim=2,
                weights=b"\x00" * 8,
            )
        )
    session.commit()
    clock.set(NOW)
    yield project, pairs, export, live
    client.app.dependency_overrides.pop(get_now, None)


class TestOverview:
    def test_numbers_now(self, client: Any, labelled: Any) -> None:
        project, pairs, export, live = labelled
        body = client.get(f"/v1/projects/{project.id}/dashboard").json()
        assert body["generated_at"] == "2026-01-01T12:30:00Z"
        assert body["stats"] == client.get(f"/v1/projects/{project.id}/stats").json()
        assert (body["stats"]["labels"], body["stats"]["budget_remaining"]) == (6, 4)
        assert body["stats"]["pairs_released"] == 4
        # Pairs 0-2 done; pair 3 handed out with one slot leased (ann3) and one whose lease ran out (ann4);
        # pairs 4 and 5 queued, of which the budget (10 labels / 2 = 5 pairs, 4 released) allows one more.
        assert body["queue"] == {
            "pairs_waiting": 2,
            "pairs_queued": 2,
            "pairs_in_progress": 1,
            "pairs_done": 3,
            "pairs_redundant": 0,
            "gold_pairs": 1,
            "slots_open": 5,
            "slots_leased": 1,
            "budget_pairs_left": 1,
        }
        assert body["leases"]["live"] == 1
        (lease,) = body["leases"]["soonest"]
        assert lease["assignment_id"] == live["assignment_id"]
        assert (lease["annotator"], lease["pair_id"]) == ("ann3", str(pairs[3].id))
        assert lease["expires_at"] == "2026-01-01T12:35:00Z"
        assert lease["seconds_left"] == 300.0
        assert body["annotators"] == client.get(f"/v1/projects/{project.id}/annotators").json()
        assert [(a["annotator"], a["labels"]) for a in body["annotators"]] == [("ann1", 3), ("ann2", 3)]
        assert body["quality"] == client.get(f"/v1/projects/{project.id}/quality").json()

    def test_exports_schedule_and_reward_model(self, client: Any, labelled: Any) -> None:
        project, _pairs, export, _live = labelled
        body = client.get(f"/v1/projects/{project.id}/dashboard").json()
        (listed,) = body["exports"]
        assert (listed["id"], listed["status"], listed["rows"]) == (str(export.id), "succeeded", export.rows)
        assert listed["file_url"] == f"/v1/exports/{export.id}/file"
        downloaded = client.get(listed["file_url"])
        assert downloaded.status_code == 200
        assert len(downloaded.text.splitlines()) == export.rows == 1  # pair 0 (pair 1 split, pair 2 a tie)
        assert client.get(listed["manifest_url"]).json()["export_id"] == str(export.id)
        schedule = client.get(f"/v1/projects/{project.id}/export-schedule").json()
        assert body["schedule"] == {"schedule": schedule, "last_export": None}
        history = client.get(f"/v1/projects/{project.id}/reward-model").json()["history"]
        assert body["reward_model"] == list(reversed(history))
        assert [(f["labels_used"], f["cv_accuracy"]) for f in body["reward_model"]] == [(4, 0.5), (6, 0.75)]


class TestTimeline:
    def test_hourly_burn_down_rate_and_agreement(self, client: Any, labelled: Any) -> None:
        project, pairs, _export, _live = labelled
        body = client.get(
            f"/v1/projects/{project.id}/dashboard/timeline", params={"bucket_seconds": 3600}
        ).json()
        assert body["starts"] == ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"]
        assert body["labels"] == [4, 0, 2]
        assert body["gold_labels"] == [0, 0, 0]
        assert body["labels_per_hour"] == [4.0, 0.0, 2.0]
        assert body["cumulative_labels"] == [4, 4, 6]
        assert (body["budget"], body["budget_remaining"]) == (10, [6, 6, 4])
        # Agreement as the labels stood at each bucket's end (the last: now), in pair terms.
        expected = []
        for end in (60, 120, 150):
            labels = [(pairs[i].id, who, side) for minute, who, i, side in PLAN if minute < end]
            expected.append(
                {
                    "at": (T0 + timedelta(minutes=end)).isoformat().replace("+00:00", "Z"),
                    "labels": len(labels),
                    "pairs_with_overlap": len(labels) // 2,
                    "krippendorff_alpha": pytest.approx(krippendorff_alpha_nominal(labels)),
                    "fleiss_kappa": pytest.approx(fleiss_kappa(labels).kappa),
                }
            )
        assert body["agreement"] == expected
        assert body["agreement"][0]["krippendorff_alpha"] != body["agreement"][-1]["krippendorff_alpha"]
        # The last point is the quality snapshot's own number once aggregated.
        assert aggregate_project(str(project.id)) is True
        quality = client.get(f"/v1/projects/{project.id}/quality").json()
        assert body["agreement"][-1]["krippendorff_alpha"] == pytest.approx(quality["krippendorff_alpha"])
        assert body["agreement"][-1]["fleiss_kappa"] == pytest.approx(quality["fleiss_kappa"]["kappa"])

    def test_default_buckets_fit_the_history(self, client: Any, labelled: Any) -> None:
        project, *_ = labelled
        body = client.get(f"/v1/projects/{project.id}/dashboard/timeline").json()
        # 10:05 to 12:30 is 146 one-minute buckets (over 120): five minutes it is.
        assert body["bucket_seconds"] == 300
        assert (body["starts"][0], body["starts"][-1], len(body["starts"])) == (
            "2026-01-01T10:05:00Z",
            "2026-01-01T12:30:00Z",
            30,
        )
        assert sum(body["labels"]) == 6
        assert body["labels"][:4] == [1, 1, 1, 1]
        assert body["labels_per_hour"][0] == 12.0

    def test_too_many_buckets_name_the_field(self, client: Any, labelled: Any, session: Any) -> None:
        project, *_ = labelled
        client.app.dependency_overrides[get_now] = lambda: T0 + timedelta(days=3)
        refused = client.get(f"/v1/projects/{project.id}/dashboard/timeline", params={"bucket_seconds": 60})
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert "bucket_seconds" in refused.text
        too_small = client.get(f"/v1/projects/{project.id}/dashboard/timeline", params={"bucket_seconds": 59})
        assert too_small.status_code == 422
        assert "bucket_seconds" in too_small.text

    def test_a_project_without_labels(self, client: Any, session: Any) -> None:
        project = make_project(session)
        session.commit()
        client.app.dependency_overrides[get_now] = lambda: NOW
        try:
            body = client.get(f"/v1/projects/{project.id}/dashboard/timeline").json()
        finally:
            client.app.dependency_overrides.pop(get_now, None)
        assert (body["starts"], body["labels"], body["cumulative_labels"]) == (
            ["2026-01-01T12:30:00Z"],
            [0],
            [0],
        )
        assert body["budget_remaining"] is None
        assert body["agreement"][0]["krippendorff_alpha"] is None
