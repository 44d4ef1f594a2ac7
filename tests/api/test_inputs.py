"""Every input gets an answer: lone surrogates, NULs, out-of-range integers, oversized metadata, chunked
bodies over the limit and unexpected failures are 4xx (naming the field) or a problem+json 500, never a
plain 500 or a dropped connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.main import create_app
from app.projects.models import Project
from app.prompts.models import Prompt
from tests.conftest import ADMIN_KEY
from tests.factories import make_pairs, make_project
from tests.live_server import serve

SURROGATE = "a\ud800b"  # a lone high surrogate: valid JSON (`"a\ud800b"`), not encodable as UTF-8
INT4_MAX = 2**31 - 1


def post_json(client: Any, url: str, body: Any, method: str = "POST", **headers: str) -> Any:
    """Send `body` as ASCII JSON, so lone surrogates travel as `\\ud800` escapes (as a client would)."""
    return client.request(
        method, url, content=json.dumps(body), headers={"Content-Type": "application/json", **headers}
    )


def fields(response: Any) -> list[str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return [e["field"] for e in response.json().get("errors") or []]


def item(**overrides: Any) -> dict[str, Any]:
    return {"external_id": "p1", "prompt": "Name a prime.", "responses": ["7", "Nine."]} | overrides


@pytest.fixture
def project_id(client: Any) -> str:
    created = client.post("/v1/projects", json={"name": "inputs"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def count_prompts(session: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Prompt)))


class TestLoneSurrogates:
    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"prompt": SURROGATE}, "body.items[0].prompt"),
            ({"prompt": [{"role": "user", "content": SURROGATE}]}, "body.items[0].prompt[0].content"),
            ({"responses": ["7", SURROGATE]}, "body.items[0].responses[1]"),
            ({"responses": ["7", {"text": SURROGATE}]}, "body.items[0].responses[1].text"),
            ({"responses": ["7", {"text": "9", "model": SURROGATE}]}, "body.items[0].responses[1].model"),
            ({"external_id": SURROGATE}, "body.items[0].external_id"),
            ({"metadata": {"source": SURROGATE}}, "body.items[0].metadata"),
            ({"metadata": {SURROGATE: 1}}, "body.items[0].metadata"),
            ({"metadata": {"deep": [{"x": SURROGATE}]}}, "body.items[0].metadata"),
        ],
    )
    def test_ingest_refuses_them_naming_the_field(
        self,
        client: Any,
        session: Any,
        project_id: str,
        recorded_tasks: list[Any],
        overrides: dict[str, Any],
        field: str,
    ) -> None:
        response = post_json(client, f"/v1/projects/{project_id}/prompts", {"items": [item(**overrides)]})
        assert response.status_code == 422, response.text
        assert field in fields(response)
        assert count_prompts(session) == 0

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"name": SURROGATE}, "body.name"),
            ({"name": "ok", "instructions": SURROGATE}, "body.instructions"),
        ],
    )
    def test_project_fields(self, client: Any, session: Any, body: dict[str, Any], field: str) -> None:
        response = post_json(client, "/v1/projects", body)
        assert response.status_code == 422, response.text
        assert fields(response) == [field]
        assert session.scalar(select(func.count()).select_from(Project)) == 0

    def test_other_bodies(self, client: Any, project_id: str) -> None:
        cases = [
            ("/v1/keys", {"role": "annotator", "name": SURROGATE}, "POST", "body.name"),
            (
                f"/v1/projects/{project_id}/export-webhook",
                {"url": f"https://{SURROGATE}.org/"},
                "PUT",
                "body.url",
            ),
            (f"/v1/projects/{project_id}/export-schedule", {"cron": SURROGATE}, "PUT", "body.cron"),
            (f"/v1/projects/{project_id}", {"instructions": SURROGATE}, "PATCH", "body.instructions"),
            ("/v1/session", {"key": SURROGATE}, "POST", "key"),  # its own parser: JSON or a form
        ]
        for url, body, method, field in cases:
            response = post_json(client, url, body, method=method)
            assert response.status_code == 422, (url, response.text)
            assert field in fields(response), url

    def test_claim_on_behalf(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        response = post_json(client, f"/v1/projects/{project.id}/queue/claim", {"annotator": SURROGATE})
        assert response.status_code == 422, response.text
        assert fields(response) == ["body.annotator"]

    def test_rationale_and_skip_reason_on_both_paths(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 2)
        session.commit()
        key = client.post(
            "/v1/keys", json={"role": "annotator", "name": "ann", "projects": [str(project.id)]}
        ).json()["key"]
        own = {"Authorization": f"Bearer {key}"}  # the one-statement lane (app/queue/fastlane.py)
        for headers in (own, {}):  # and the admin's unit of work
            claimed = client.post(f"/v1/projects/{project.id}/queue/claim", headers=headers)
            assert claimed.status_code == 200, claimed.text
            assignment = claimed.json()["assignment_id"]
            labelled = post_json(
                client,
                f"/v1/assignments/{assignment}/label",
                {"choice": "a", "rationale": SURROGATE},
                **headers,
            )
            assert labelled.status_code == 422, labelled.text
            assert fields(labelled) == ["body.rationale"]
            skipped = post_json(
                client, f"/v1/assignments/{assignment}/skip", {"reason": SURROGATE}, **headers
            )
            assert skipped.status_code == 422, skipped.text
            assert fields(skipped) == ["body.reason"]

    def test_raw_surrogate_bytes_are_refused_too(self, client: Any, project_id: str) -> None:
        # UTF-8-encoded surrogates (invalid UTF-8) decode to the same lone surrogates.
        body = json.dumps({"items": [item()]}).replace("Nine.", "a\\ud800").encode()
        body = body.replace(b"a\\ud800", b"a" + b"\xed\xa0\x80")
        response = client.post(
            f"/v1/projects/{project_id}/prompts", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code in (400, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


class TestNulInPath:
    def test_principal_name(self, client: Any) -> None:
        response = client.patch("/v1/principals/a%00b", json={"reviewer": True})
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"

    def test_prompt_external_id(self, client: Any, project_id: str) -> None:
        response = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/a%00b")
        assert response.status_code in (404, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"


class TestIntegerRange:
    @pytest.mark.parametrize("budget", [INT4_MAX + 1, 10**40])
    def test_budget_beyond_int4_on_create_and_change(self, client: Any, project_id: str, budget: int) -> None:
        created = post_json(client, "/v1/projects", {"name": "big", "budget": budget})
        assert created.status_code == 422, created.text
        assert fields(created) == ["body.budget"]
        changed = post_json(client, f"/v1/projects/{project_id}", {"budget": budget}, method="PATCH")
        assert changed.status_code == 422, changed.text
        assert fields(changed) == ["body.budget"]

    def test_the_largest_int4_budget_is_kept(self, client: Any) -> None:
        created = post_json(client, "/v1/projects", {"name": "max", "budget": INT4_MAX})
        assert created.status_code == 201, created.text
        assert client.get(f"/v1/projects/{created.json()['id']}").json()["budget"] == INT4_MAX


class TestMetadata:
    def post(self, client: Any, project_id: str, metadata: Any) -> Any:
        return post_json(client, f"/v1/projects/{project_id}/prompts", {"items": [item(metadata=metadata)]})

    @pytest.mark.parametrize(
        "metadata",
        [{"k": "a\x00b"}, {"a\x00b": 1}, {"nested": {"list": ["ok", {"deep": "\x00"}]}}],
        ids=["value", "key", "nested"],
    )
    def test_nul_anywhere(
        self, client: Any, session: Any, project_id: str, recorded_tasks: list[Any], metadata: Any
    ) -> None:
        response = self.post(client, project_id, metadata)
        assert response.status_code == 422, response.text
        assert fields(response) == ["body.items[0].metadata"]
        assert count_prompts(session) == 0

    def test_non_finite_numbers(
        self, client: Any, session: Any, project_id: str, recorded_tasks: list[Any]
    ) -> None:
        raw = json.dumps({"items": [item(metadata={"score": float("nan")})]})  # `NaN`: not JSON
        response = client.post(
            f"/v1/projects/{project_id}/prompts", content=raw, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert fields(response) == ["body.items[0].metadata"]
        assert count_prompts(session) == 0

    def test_size_cap(
        self, client: Any, session: Any, project_id: str, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(max_metadata_bytes=100)
        response = self.post(client, project_id, {"note": "x" * 120})
        assert response.status_code == 422, response.text
        assert fields(response) == ["body.items[0].metadata"]
        assert "100 bytes" in response.json()["errors"][0]["message"]
        assert self.post(client, project_id, {"note": "x" * 50}).status_code == 202
        assert count_prompts(session) == 1

    def test_key_cap_counts_nested_keys(
        self, client: Any, session: Any, project_id: str, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(max_metadata_keys=3)
        response = self.post(client, project_id, {"a": 1, "b": {"c": 2, "d": 3}})
        assert response.status_code == 422, response.text
        assert fields(response) == ["body.items[0].metadata"]
        assert "3 keys" in response.json()["errors"][0]["message"]
        assert self.post(client, project_id, {"a": 1, "b": {"c": 2}}).status_code == 202


class TestChunkedBodyOverTheLimit:
    def test_is_413(self, db: Any, override_settings: Any, recorded_tasks: list[Any]) -> None:
        override_settings(max_body_bytes=4096)
        app = create_app(admin_key=ADMIN_KEY, start_runner=False)

        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"name": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            response = client.post(
                "/v1/projects", content=chunks(), headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 413, response.text
            assert response.json()["code"] == "payload_too_large"
            assert response.headers["content-type"] == "application/problem+json"
            assert client.get("/v1/projects").status_code == 200


def _http_exchange(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open socket; the status, headers and body of its answer."""
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {ADMIN_KEY}\r\n\r\n"
    sock.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def _address(base: str) -> tuple[str, int]:
    host, port = base.removeprefix("http://").split(":")
    return host, int(port)


class TestUnexpectedErrors:
    def test_are_problem_json_and_keep_the_connection(self, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        from app.auth import router as auth_router

        def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        monkeypatch.setattr(auth_router.service, "list_keys", broken)
        app = create_app(admin_key=ADMIN_KEY, start_runner=False)
        with serve(app) as base, socket.create_connection(_address(base)) as sock:
            status, headers, body = _http_exchange(sock, "/v1/keys")
            assert status == 500
            assert headers["content-type"] == "application/problem+json"
            problem = json.loads(body)
            assert problem["code"] == "internal_error"
            assert "a bug" not in body.decode()  # no internals leak
            assert headers.get("connection") != "close"
            status, _, body = _http_exchange(sock, "/v1/me")  # the same connection answers the next one
            assert status == 200, body


class TestSignInForm:
    FORM = {"Content-Type": "application/x-www-form-urlencoded"}

    def test_too_many_fields_is_422(self, client: Any) -> None:
        response = client.post("/v1/session", content="a=1&b=2&c=3&d=4&e=5&key=x", headers=self.FORM)
        assert response.status_code == 422, response.text
        assert fields(response) == ["key"]


class TestDateTimes:
    """A date-time is ISO 8601 text, as the schema says; a number is not taken as Unix seconds."""

    def test_numbers_are_refused(self, client: Any, session: Any) -> None:
        project = make_project(session)
        session.commit()
        progress = client.get(f"/v1/projects/{project.id}/progress", params={"since": "0.5"})
        assert progress.status_code == 422, progress.text
        assert fields(progress) == ["query.since"]
        key = client.post("/v1/keys", json={"role": "annotator", "name": "n", "expires_at": 4102444800})
        assert key.status_code == 422, key.text
        assert fields(key) == ["body.expires_at"]
        export = client.post(f"/v1/projects/{project.id}/exports", json={"snapshot_at": 0})
        assert export.status_code == 422, export.text
        assert fields(export) == ["body.snapshot_at"]

    def test_iso_text_is_taken(self, client: Any, session: Any) -> None:
        project = make_project(session)
        session.commit()
        since = "2026-01-31T09:00:00+02:00"
        progress = client.get(f"/v1/projects/{project.id}/progress", params={"since": since})
        assert progress.status_code == 200, progress.text
        assert datetime.fromisoformat(progress.json()["since"]) == datetime.fromisoformat(since)
