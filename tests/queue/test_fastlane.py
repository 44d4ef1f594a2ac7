"""An annotator's own key on Postgres: claim and label as one statement each (app/queue/fastlane.py).

The same answers as the unit-of-work path (the bootstrap admin's), and the same refusals: 401 for an
unknown, revoked or expired key, 403 for a data team, 404 for someone else's project or assignment, 409 for
a second label, 429 past the key's rate limit (with no claim made) or the lease cap.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from app.api.clock import get_now
from app.auth import keys
from app.auth.models import ApiKey
from app.db.base import utcnow
from app.main import create_app
from app.projects.models import Project, ProjectStatus
from app.queue import fastlane
from app.queue.models import Assignment, Label
from tests.conftest import ADMIN_KEY
from tests.factories import grant_annotator, make_pairs, make_project
from tests.live_server import serve


def new_key(client: Any, name: str, role: str = "annotator", projects: list[Any] | None = None) -> str:
    body: dict[str, Any] = {"role": role, "name": name}
    if projects is not None:
        body["projects"] = [str(p) for p in projects]
    created = client.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def claim(client: Any, project_id: Any, key: str) -> Any:
    return client.post(f"/v1/projects/{project_id}/queue/claim", headers=as_key(key))


def label(
    client: Any, assignment_id: Any, key: str, body: dict[str, Any] | None = None, **headers: str
) -> Any:
    return client.post(
        f"/v1/assignments/{assignment_id}/label",
        json=body or {"choice": "a"},
        headers=as_key(key) | headers,
    )


@pytest.fixture
def lane_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The one-statement calls the routes made (to tell the lane from the unit-of-work path)."""
    calls: list[str] = []
    for name in ("claim_as", "label_as"):
        original = getattr(fastlane.repository, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(fastlane.repository, name, spy)
    return calls


@pytest.fixture
def project(session: Any) -> Project:
    made = make_project(session, instructions="Choose the more helpful answer.", gold_rate=0.0)
    make_pairs(session, made, 5)
    session.commit()
    return made


class TestAnnotatorKey:
    def test_claim_and_label_take_one_statement_each(
        self, client: Any, session: Any, project: Project, lane_calls: list[str]
    ) -> None:
        key = new_key(client, "ann-lane", projects=[project.id])
        claimed = claim(client, project.id, key)
        assert claimed.status_code == 200, claimed.text
        body = claimed.json()
        assert body["annotator"] == "ann-lane"
        assert body["instructions"] == "Choose the more helpful answer."
        assert body["prompt"].startswith("Prompt number")
        stored = label(
            client, body["assignment_id"], key, {"choice": "b", "confidence": 4, "rationale": "why"}
        )
        assert stored.status_code == 201, stored.text
        read = stored.json()
        assert read["annotator"] == "ann-lane"
        assert read["winner_response_id"] == body["response_b"]["id"]  # screen position b won
        assert read["shown_first_response_id"] == body["response_a"]["id"]
        assert (read["confidence"], read["rationale"]) == (4, "why")
        assert lane_calls == ["claim_as", "label_as"]
        row = session.scalar(select(Label).where(Label.id == uuid.UUID(read["id"])))
        assert row is not None
        assert row.choice == "b"
        assert session.get(Assignment, uuid.UUID(body["assignment_id"])).status == "labeled"

    def test_the_bootstrap_admin_takes_the_unit_of_work_path(
        self, client: Any, project: Project, lane_calls: list[str]
    ) -> None:
        grant_annotator("someone", project.id)
        claimed = client.post(f"/v1/projects/{project.id}/queue/claim", json={"annotator": "someone"})
        assert claimed.status_code == 200
        assert (
            client.post(
                f"/v1/assignments/{claimed.json()['assignment_id']}/label", json={"choice": "a"}
            ).status_code
            == 201
        )
        assert lane_calls == []

    def test_an_admin_key_claims_for_itself_in_any_project(self, client: Any, project: Project) -> None:
        key = new_key(client, "admin-two", role="admin")
        claimed = claim(client, project.id, key)
        assert claimed.status_code == 200
        assert claimed.json()["annotator"] == "admin-two"

    def test_retries_return_the_first_label_and_other_bodies_conflict(
        self, client: Any, session: Any, project: Project
    ) -> None:
        key = new_key(client, "ann-retry", projects=[project.id])
        first_claim = claim(client, project.id, key).json()["assignment_id"]
        first = label(client, first_claim, key, **{"Idempotency-Key": "k-1"})
        assert first.status_code == 201
        again = label(client, first_claim, key, **{"Idempotency-Key": "k-1"})
        assert (again.status_code, again.json()) == (200, first.json())
        without_key = label(client, first_claim, key)
        assert (without_key.status_code, without_key.json()["id"]) == (200, first.json()["id"])
        other_body = label(client, first_claim, key, {"choice": "tie"})
        assert (other_body.status_code, other_body.json()["code"]) == (409, "already_labeled")
        second_claim = claim(client, project.id, key).json()["assignment_id"]
        reused = label(client, second_claim, key, **{"Idempotency-Key": "k-1"})
        assert (reused.status_code, reused.json()["code"]) == (409, "idempotency_key_reused")
        # The refused label left the second lease live: a fresh key labels it.
        assert label(client, second_claim, key, **{"Idempotency-Key": "k-2"}).status_code == 201
        assert session.scalar(select(func.count()).select_from(Label)) == 2

    def test_a_label_after_the_lease_ended_is_refused(self, client: Any, project: Project) -> None:
        key = new_key(client, "ann-late", projects=[project.id])
        assignment_id = claim(client, project.id, key).json()["assignment_id"]
        client.app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(hours=2)
        try:
            late = label(client, assignment_id, key)
        finally:
            client.app.dependency_overrides.pop(get_now)
        assert (late.status_code, late.json()["code"]) == (409, "lease_expired")

    def test_the_lease_cap_answers_429(self, client: Any, project: Project, override_settings: Any) -> None:
        override_settings(max_active_leases_per_annotator=2)
        key = new_key(client, "ann-cap", projects=[project.id])
        assert [claim(client, project.id, key).status_code for _ in range(2)] == [200, 200]
        refused = claim(client, project.id, key)
        assert (refused.status_code, refused.json()["code"]) == (429, "active_lease_limit")
        assert int(refused.headers["Retry-After"]) > 0

    def test_an_empty_queue_says_why(self, client: Any, session: Any) -> None:
        empty = make_project(session)
        session.commit()
        key = new_key(client, "ann-empty", projects=[empty.id])
        answer = claim(client, empty.id, key)
        assert answer.status_code == 204
        assert answer.headers["Real-Queue-Reason"] == "empty"


class TestRefusals:
    def test_keys_that_do_not_authenticate_get_401(self, client: Any, session: Any, project: Project) -> None:
        revoked = new_key(client, "ann-revoked", projects=[project.id])
        expired = new_key(client, "ann-expired", projects=[project.id])
        session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == revoked[: keys.DISPLAY_PREFIX_LENGTH])
            .values(revoked_at=utcnow() - timedelta(seconds=1))
        )
        session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == expired[: keys.DISPLAY_PREFIX_LENGTH])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        session.commit()
        for key in (revoked, expired, keys.generate()):
            answer = claim(client, project.id, key)
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert label(client, uuid.uuid4(), key).status_code == 401
        assert session.scalar(select(func.count()).select_from(Assignment)) == 0

    def test_failed_authentications_are_counted(
        self, client: Any, project: Project, override_settings: Any
    ) -> None:
        override_settings(auth_failures_per_minute=3)
        codes = [claim(client, project.id, keys.generate()).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]

    def test_a_data_team_may_not_claim(self, client: Any, project: Project) -> None:
        key = new_key(client, "team-x", role="data_team", projects=[project.id])
        answer = claim(client, project.id, key)
        assert (answer.status_code, answer.json()["code"]) == (403, "forbidden")

    def test_other_projects_and_assignments_are_404(
        self, client: Any, session: Any, project: Project
    ) -> None:
        outsider = new_key(client, "ann-outsider", projects=[])
        assert claim(client, project.id, outsider).status_code == 404
        assert claim(client, uuid.uuid4(), outsider).status_code == 404
        member = new_key(client, "ann-member", projects=[project.id])
        other_member = new_key(client, "ann-member-2", projects=[project.id])
        assignment_id = claim(client, project.id, member).json()["assignment_id"]
        assert label(client, assignment_id, other_member).status_code == 404
        assert label(client, uuid.uuid4(), member).status_code == 404
        session.execute(update(Project).where(Project.id == project.id).values(status=ProjectStatus.ARCHIVED))
        session.commit()
        assert claim(client, project.id, member).status_code == 404

    def test_past_the_rate_limit_no_claim_is_made(
        self, client: Any, session: Any, project: Project, override_settings: Any
    ) -> None:
        key = new_key(client, "ann-fast", projects=[project.id])
        override_settings(rate_limit_per_minute=2)
        codes = [claim(client, project.id, key).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert session.scalar(select(func.count()).select_from(Assignment)) == 2


class TestConcurrencyLimit:
    def test_at_most_queue_concurrency_claims_run_at_once(
        self, db: Any, session: Any, project: Project, override_settings: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        override_settings(queue_concurrency=2)
        running = 0
        most = 0
        lock = threading.Lock()
        original = fastlane.claim

        def slow_claim(*args: Any) -> Any:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.5)  # long enough for five near-simultaneous claims to overlap on a loaded machine
            try:
                return original(*args)
            finally:
                with lock:
                    running -= 1

        monkeypatch.setattr(fastlane, "claim", slow_claim)
        with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as base_url:
            with httpx.Client(base_url=base_url, headers=as_key(ADMIN_KEY)) as admin:
                keys_made = [
                    admin.post(
                        "/v1/keys",
                        json={"role": "annotator", "name": f"ann-c{n}", "projects": [str(project.id)]},
                    ).json()["key"]
                    for n in range(5)
                ]

            def one_claim(key: str) -> int:
                with httpx.Client(base_url=base_url, headers=as_key(key), timeout=30) as c:
                    return c.post(f"/v1/projects/{project.id}/queue/claim").status_code

            with ThreadPoolExecutor(5) as pool:
                codes = list(pool.map(one_claim, keys_made))
        assert codes == [200] * 5
        assert most == 2
