"""Claim and label served from the edge middleware (app/queue/edge.py) answer as the FastAPI routes do.

Each request is sent twice, to the same app: once the way annotators send it (the edge serves it) and once
with the edge's path turned off (FastAPI's routing, dependencies and exception layer), and the answers are
compared: status, content type, the request id and problem bodies exactly, successful bodies by their keys.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.api import deps
from app.api.clock import get_now
from app.auth.ratelimit import reset_limiter
from app.db.base import utcnow
from app.projects.models import Project
from app.queue import edge
from app.queue import router as queue_router
from tests.factories import make_pairs, make_project
from tests.queue.test_fastlane import as_key, new_key


@pytest.fixture
def project(session: Any) -> Project:
    made = make_project(session, gold_rate=0.0)
    make_pairs(session, made, 8)
    session.commit()
    return made


@pytest.fixture
def fastapi_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Claims and labels that went through the FastAPI routes (only they read credentials_of)."""
    calls: list[str] = []
    original = deps.credentials_of

    def spy(request: Any, credentials: Any) -> Any:
        calls.append(request.url.path)
        return original(request, credentials)

    monkeypatch.setattr(queue_router, "credentials_of", spy)
    return calls


@pytest.fixture
def edge_off(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A switch: inside `with edge_off():` every request takes the FastAPI routes."""
    from contextlib import contextmanager

    @contextmanager
    def switch() -> Iterator[None]:
        with monkeypatch.context() as patch:
            patch.setattr(edge.QueueRoutes, "may_serve", lambda self, scope: False)
            yield

    return switch


def answer(response: Any) -> tuple[int, str | None, Any]:
    body: Any = response.json() if response.content else None
    if response.headers.get("content-type") != "application/problem+json" and isinstance(body, dict):
        body = sorted(body)  # ids and texts differ from one claim to the next; the shape must not
    return response.status_code, response.headers.get("content-type"), body


def both(client: Any, edge_off: Any, method: str, path: str, **kwargs: Any) -> tuple[Any, Any]:
    """The request through the edge, then through FastAPI; the rate limiter reset before each."""
    reset_limiter()
    served = client.request(method, path, **kwargs)
    reset_limiter()
    with edge_off():
        routed = client.request(method, path, **kwargs)
    return served, routed


class TestSameAnswers:
    def test_a_claim_and_its_label_take_the_edge(
        self, client: Any, project: Project, fastapi_calls: list[str]
    ) -> None:
        key = new_key(client, "ann-edge", projects=[project.id])
        claimed = client.post(
            f"/v1/projects/{project.id}/queue/claim", headers=as_key(key) | {"X-Request-ID": "req-e1"}
        )
        assert claimed.status_code == 200, claimed.text
        assert claimed.headers["x-request-id"] == "req-e1"
        body = claimed.json()
        labelled = client.post(
            f"/v1/assignments/{body['assignment_id']}/label",
            json={"choice": "a"},
            headers=as_key(key) | {"Idempotency-Key": "edge-1"},
        )
        assert labelled.status_code == 201, labelled.text
        assert labelled.json()["assignment_id"] == body["assignment_id"]
        assert re.fullmatch("[0-9a-f]{32}", labelled.headers["x-request-id"])
        again = client.post(
            f"/v1/assignments/{body['assignment_id']}/label",
            json={"choice": "a"},
            headers=as_key(key) | {"Idempotency-Key": "edge-1"},
        )
        assert (again.status_code, again.json()) == (200, labelled.json())
        assert fastapi_calls == []

    def test_claims_and_labels_answer_alike(self, client: Any, project: Project, edge_off: Any) -> None:
        key = new_key(client, "ann-same", projects=[project.id])
        claim_path = f"/v1/projects/{project.id}/queue/claim"
        served, routed = both(client, edge_off, "POST", claim_path, headers=as_key(key))
        assert answer(served) == answer(routed)
        assert served.status_code == 200
        assert served.headers.keys() == routed.headers.keys()
        for claimed, body in ((served, {"choice": "b"}), (routed, {"choice": "a", "confidence": 3})):
            path = f"/v1/assignments/{claimed.json()['assignment_id']}/label"
            reset_limiter()
            first = client.post(path, json=body, headers=as_key(key))
            assert first.status_code == 201, first.text
        a = client.post(
            f"/v1/assignments/{served.json()['assignment_id']}/label",
            json={"choice": "a"},
            headers=as_key(key),
        )
        with edge_off():
            b = client.post(
                f"/v1/assignments/{routed.json()['assignment_id']}/label",
                json={"choice": "b"},
                headers=as_key(key),
            )
        assert (
            (a.status_code, a.json()["code"]) == (b.status_code, b.json()["code"]) == (409, a.json()["code"])
        )

    @pytest.mark.parametrize(
        ("path", "kwargs"),
        [
            ("claim", {"headers": {"Authorization": "Bearer real_ann_unknown0123456789abcdefghijklmn"}}),
            ("claim", {"headers": {"Authorization": "Bearer nope"}}),
            ("claim", {"headers": {"Authorization": "Basic abc"}}),
            ("claim", {"headers": {"Authorization": ""}}),
            ("claim-other-project", {}),
            ("claim", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}),
            ("claim", {"content": b"[]", "headers": {"Content-Type": "application/json"}}),
            ("claim", {"json": {"unknown": 1}}),
            ("claim", {"content": b'{"annotator": "x"}', "headers": {"Content-Type": "text/plain"}}),
            ("claim", {"json": {"annotator": "someone"}}),
            ("claim-bad-id", {}),
            ("label-unknown", {"json": {"choice": "a"}}),
            ("label-unknown", {}),
            ("label-unknown", {"json": {"choice": "c"}}),
            ("label-unknown", {"json": {"choice": "a"}, "headers": {"Idempotency-Key": "x" * 201}}),
            ("label-unknown", {"json": {"choice": "a"}, "headers": {"Idempotency-Key": "has space"}}),
            ("label-unknown", {"json": {"choice": "a"}, "headers": {"Cookie": "real_session=abc"}}),
            ("label-bad-id", {"json": {"choice": "a"}}),
        ],
    )
    def test_refusals_answer_alike(
        self, client: Any, session: Any, project: Project, edge_off: Any, path: str, kwargs: dict[str, Any]
    ) -> None:
        key = new_key(client, "ann-refused", projects=[project.id])
        other = make_project(session, name="someone else's")
        session.commit()
        url = {
            "claim": f"/v1/projects/{project.id}/queue/claim",
            "claim-other-project": f"/v1/projects/{other.id}/queue/claim",
            "claim-bad-id": "/v1/projects/not-a-uuid/queue/claim",
            "label-unknown": f"/v1/assignments/{uuid.uuid4()}/label",
            "label-bad-id": "/v1/assignments/12345/label",
        }[path]
        headers = as_key(key) | kwargs.pop("headers", {})
        served, routed = both(client, edge_off, "POST", url, headers=headers, **kwargs)
        assert served.status_code >= 400
        assert answer(served) == answer(routed)
        assert {k: v for k, v in served.headers.items() if k != "x-request-id"} == {
            k: v for k, v in routed.headers.items() if k != "x-request-id"
        }

    def test_other_methods_are_fastapis(self, client: Any, project: Project, edge_off: Any) -> None:
        served, routed = both(client, edge_off, "GET", f"/v1/projects/{project.id}/queue/claim")
        assert served.status_code == 405
        assert answer(served) == answer(routed)


class TestFallsBackToFastAPI:
    def test_a_moved_clock_is_read(
        self, client: Any, project: Project, fastapi_calls: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Tests move time with a dependency override: such an app goes through FastAPI."""
        from datetime import timedelta

        key = new_key(client, "ann-clock", projects=[project.id])
        later = utcnow() + timedelta(days=3)
        client.app.dependency_overrides[get_now] = lambda: later
        try:
            claimed = client.post(f"/v1/projects/{project.id}/queue/claim", headers=as_key(key))
        finally:
            client.app.dependency_overrides.clear()
        assert claimed.status_code == 200, claimed.text
        assert fastapi_calls == [f"/v1/projects/{project.id}/queue/claim"]

    def test_a_browser_session_goes_through_fastapi(
        self, client: Any, project: Project, fastapi_calls: list[str]
    ) -> None:
        refused = client.post(
            f"/v1/projects/{project.id}/queue/claim",
            headers={"Authorization": "", "Cookie": "real_session=not-a-session"},
        )
        assert refused.status_code == 401
        assert fastapi_calls == [f"/v1/projects/{project.id}/queue/claim"]
