"""Renew, release, skip, undo, Idempotency-Key, and the label's confidence and rationale."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.api.clock import get_now
from app.db.base import utcnow
from app.maintenance.tasks import reconcile
from app.queue.models import Assignment, Label
from tests.factories import grant_annotator, make_pairs, make_project


def claim(client: Any, project_id: Any, annotator: str = "ann") -> Any:
    grant_annotator(annotator, project_id)  # an admin claims only for a real annotator
    return client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})


def at(client: Any, seconds: float) -> None:
    """Move the API's clock `seconds` from now."""
    moment = utcnow() + timedelta(seconds=seconds)
    client.app.dependency_overrides[get_now] = lambda: moment


def count_labels(session: Any) -> int:
    return session.scalar(select(func.count()).select_from(Label))


@pytest.fixture
def one_pair(session: Any) -> Any:
    project = make_project(session, lease_ttl_seconds=60)
    make_pairs(session, project, 1)
    session.commit()
    return project


class TestRenew:
    def test_renew_extends_and_is_capped(self, client: Any, one_pair: Any, override_settings: Any) -> None:
        override_settings(max_lease_renewals=2)
        first = claim(client, one_pair.id).json()
        at(client, 50)
        renewed = client.post(f"/v1/assignments/{first['assignment_id']}/renew")
        assert renewed.status_code == 200
        assert renewed.json()["renewals_left"] == 1
        assert renewed.json()["lease_expires_at"] > first["lease_expires_at"]
        at(client, 100)  # past the first expiry, inside the renewed one
        assert claim(client, one_pair.id, "other").status_code == 204
        assert client.post(f"/v1/assignments/{first['assignment_id']}/renew").status_code == 200
        capped = client.post(f"/v1/assignments/{first['assignment_id']}/renew")
        assert capped.status_code == 409
        assert capped.json()["code"] == "renewal_limit"

    def test_an_expired_lease_cannot_be_renewed(self, client: Any, one_pair: Any) -> None:
        assignment = claim(client, one_pair.id).json()["assignment_id"]
        at(client, 61)
        refused = client.post(f"/v1/assignments/{assignment}/renew")
        assert refused.status_code == 409
        assert refused.json()["code"] == "lease_expired"


class TestReleaseAndSkip:
    def test_release_frees_the_pair_at_once_and_it_may_come_back(self, client: Any, one_pair: Any) -> None:
        assignment = claim(client, one_pair.id, "alice").json()["assignment_id"]
        released = client.post(f"/v1/assignments/{assignment}/release")
        assert released.json()["status"] == "released"
        assert client.post(f"/v1/assignments/{assignment}/release").status_code == 200  # idempotent
        assert client.post(f"/v1/assignments/{assignment}/label", json={"choice": "a"}).status_code == 409
        assert claim(client, one_pair.id, "alice").status_code == 200

    def test_skip_never_hands_the_pair_to_that_annotator_again(
        self, client: Any, one_pair: Any, session: Any
    ) -> None:
        assignment = claim(client, one_pair.id, "alice").json()["assignment_id"]
        skipped = client.post(f"/v1/assignments/{assignment}/skip", json={"reason": "not my language"})
        assert skipped.json()["status"] == "skipped"
        assert claim(client, one_pair.id, "alice").status_code == 204
        assert claim(client, one_pair.id, "bob").status_code == 200
        stored = session.get(Assignment, assignment)
        session.refresh(stored)
        assert stored.skip_reason == "not my language"
        assert count_labels(session) == 0


class TestIdempotencyKey:
    def test_same_key_same_body_returns_the_first_result(
        self, client: Any, one_pair: Any, session: Any
    ) -> None:
        assignment = claim(client, one_pair.id).json()["assignment_id"]
        body = {"choice": "b", "confidence": 4, "rationale": "clearer"}
        headers = {"Idempotency-Key": "k-1"}
        first = client.post(f"/v1/assignments/{assignment}/label", json=body, headers=headers)
        again = client.post(f"/v1/assignments/{assignment}/label", json=body, headers=headers)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        assert (first.json()["confidence"], first.json()["rationale"]) == (4, "clearer")
        other = client.post(
            f"/v1/assignments/{assignment}/label", json={**body, "confidence": 5}, headers=headers
        )
        assert other.status_code == 409
        assert other.json()["code"] == "idempotency_key_reused"
        assert count_labels(session) == 1

    def test_a_key_cannot_be_reused_for_another_assignment(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 2)
        session.commit()
        first, second = (claim(client, project.id).json()["assignment_id"] for _ in range(2))
        headers = {"Idempotency-Key": "same"}
        assert (
            client.post(f"/v1/assignments/{first}/label", json={"choice": "a"}, headers=headers).status_code
            == 201
        )
        reused = client.post(f"/v1/assignments/{second}/label", json={"choice": "a"}, headers=headers)
        assert reused.status_code == 409
        assert reused.json()["code"] == "idempotency_key_reused"

    def test_ten_concurrent_identical_submits_store_one_row(
        self, client: Any, one_pair: Any, session: Any
    ) -> None:
        assignment = claim(client, one_pair.id).json()["assignment_id"]
        barrier = threading.Barrier(10)

        def submit(_: int) -> Any:
            barrier.wait()
            return client.post(
                f"/v1/assignments/{assignment}/label",
                json={"choice": "tie"},
                headers={"Idempotency-Key": "burst"},
            )

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(submit, range(10)))
        assert sorted(r.status_code for r in results) == [200] * 9 + [201]
        assert len({r.text for r in results}) == 1
        assert count_labels(session) == 1


class TestUndo:
    def test_undo_gives_back_the_budget_and_the_slot(self, client: Any, session: Any) -> None:
        project = make_project(session, budget=1)
        make_pairs(session, project, 2)
        session.commit()
        assignment = claim(client, project.id, "alice").json()["assignment_id"]
        client.post(f"/v1/assignments/{assignment}/label", json={"choice": "a"})
        assert client.get(f"/v1/projects/{project.id}/stats").json()["budget_remaining"] == 0
        assert claim(client, project.id, "bob").headers["Real-Queue-Reason"] == "budget_spent"
        assert client.delete(f"/v1/assignments/{assignment}/label").status_code == 204
        stats = client.get(f"/v1/projects/{project.id}/stats").json()
        assert (stats["labels"], stats["budget_remaining"]) == (0, 1)
        again = claim(client, project.id, "bob")
        assert again.status_code == 200
        assert (
            client.post(
                f"/v1/assignments/{again.json()['assignment_id']}/label", json={"choice": "b"}
            ).status_code
            == 201
        )
        assert count_labels(session) == 1
        actions = [e["action"] for e in client.get("/v1/audit").json()["items"]]
        assert "label.withdrawn" in actions

    def test_only_the_last_label_within_the_window(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 2)
        session.commit()
        first, second = (claim(client, project.id, "alice").json()["assignment_id"] for _ in range(2))
        client.post(f"/v1/assignments/{first}/label", json={"choice": "a"})
        at(client, 1)
        client.post(f"/v1/assignments/{second}/label", json={"choice": "a"})
        not_last = client.delete(f"/v1/assignments/{first}/label")
        assert not_last.status_code == 409
        assert not_last.json()["code"] == "undo_refused"
        at(client, 120)
        late = client.delete(f"/v1/assignments/{second}/label")
        assert late.status_code == 409
        assert "window" in late.json()["detail"]
        assert count_labels(session) == 2


def test_maintenance_records_expired_leases(client: Any, one_pair: Any, session: Any) -> None:
    assignment = claim(client, one_pair.id).json()["assignment_id"]
    assert reconcile()["expired_leases"] == 0
    stored = session.get(Assignment, assignment)
    stored.lease_expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    assert reconcile()["expired_leases"] == 1
    session.refresh(stored)
    assert stored.status == "expired"
    refused = client.post(f"/v1/assignments/{assignment}/label", json={"choice": "a"})
    assert refused.json()["code"] == "lease_expired"
