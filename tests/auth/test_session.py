"""Browser sessions: an API key exchanged for a signed cookie that every route (the queue's lane included)
accepts, with its CSRF token on state-changing requests, the key's revocation, and the same limits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import session_cookie
from app.config import get_settings
from app.db.base import utcnow
from app.labels.outcome import pair_side
from app.pairs.models import Pair
from app.queue.models import Label
from tests.factories import make_pairs, make_project


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def project_id(db: Any) -> uuid.UUID:
    with db.session() as session:
        project = make_project(session, name="P", gold_rate=0.0)
        make_pairs(session, project, 4)
        return project.id


@pytest.fixture
def annotator_key(client: Any, project_id: uuid.UUID) -> str:
    created = client.post(
        "/v1/keys", json={"role": "annotator", "name": "ann", "projects": [str(project_id)]}
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture
def browser(client: Any) -> Iterator[TestClient]:
    """A client with no bearer header: it proves who it is with cookies only."""
    with TestClient(client.app) as plain:
        yield plain


def sign_in(browser: TestClient, key: str) -> dict[str, Any]:
    response = browser.post("/v1/session", json={"key": key})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


class TestSignIn:
    def test_the_key_becomes_an_http_only_strict_cookie(
        self, browser: TestClient, annotator_key: str
    ) -> None:
        response = browser.post("/v1/session", json={"key": annotator_key})
        assert response.status_code == 201
        cookies = {c.split("=", 1)[0]: c for c in response.headers.get_list("set-cookie")}
        session = cookies[session_cookie.SESSION_COOKIE]
        assert "HttpOnly" in session
        assert "SameSite=strict" in session
        assert "Secure" not in session  # plain http, no setting
        assert annotator_key not in session
        csrf = cookies[session_cookie.CSRF_COOKIE]
        assert "HttpOnly" not in csrf
        assert response.json()["csrf_token"] == browser.cookies[session_cookie.CSRF_COOKIE]
        assert response.json()["name"] == "ann"
        assert response.headers["cache-control"] == "no-store"
        me = browser.get("/v1/me")
        assert me.status_code == 200
        assert me.json()["name"] == "ann"

    def test_secure_when_the_setting_says_so(
        self, browser: TestClient, annotator_key: str, override_settings: Any
    ) -> None:
        override_settings(session_cookie_secure=True)
        response = browser.post("/v1/session", json={"key": annotator_key})
        assert all("Secure" in c for c in response.headers.get_list("set-cookie"))

    def test_a_form_sign_in_redirects_to_a_local_page_only(
        self, browser: TestClient, annotator_key: str
    ) -> None:
        local = browser.post(
            "/v1/session", data={"key": annotator_key, "next": "/annotate?project=x"}, follow_redirects=False
        )
        assert local.status_code == 303
        assert local.headers["location"] == "/annotate?project=x"
        for evil in ("//evil.example.com/", "https://evil.example.com/", "/\\evil.example.com"):
            away = browser.post(
                "/v1/session", data={"key": annotator_key, "next": evil}, follow_redirects=False
            )
            assert away.headers["location"] == "/annotate"

    @pytest.mark.parametrize(
        ("body", "field"),
        [({"key": ""}, "key"), ({"nope": 1}, "key"), ({"key": "real_" + "x" * 38}, None)],
    )
    def test_bad_keys_are_refused(self, browser: TestClient, body: dict[str, Any], field: str | None) -> None:
        response = browser.post("/v1/session", json=body)
        assert response.status_code == (422 if field else 401)
        assert session_cookie.SESSION_COOKIE not in response.headers.get("set-cookie", "")
        if field:
            assert response.json()["errors"][0]["field"] == field

    def test_the_bootstrap_admin_key_cannot_sign_in(self, browser: TestClient) -> None:
        from tests.conftest import ADMIN_KEY

        response = browser.post("/v1/session", json={"key": ADMIN_KEY})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "key"

    def test_a_sign_in_posted_from_another_site_is_refused(
        self, browser: TestClient, annotator_key: str
    ) -> None:
        other = browser.post(
            "/v1/session", json={"key": annotator_key}, headers={"Origin": "https://evil.example.com"}
        )
        assert other.status_code == 403
        fetch = browser.post(
            "/v1/session", json={"key": annotator_key}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert fetch.status_code == 403
        same = browser.post(
            "/v1/session", json={"key": annotator_key}, headers={"Origin": "http://testserver"}
        )
        assert same.status_code == 201

    def test_failed_sign_ins_count_against_the_address(
        self, browser: TestClient, override_settings: Any
    ) -> None:
        override_settings(auth_failures_per_minute=2)
        wrong = "real_" + "x" * 38
        statuses = [browser.post("/v1/session", json={"key": wrong}).status_code for _ in range(4)]
        assert statuses == [401, 401, 429, 429]


class TestCookieAuth:
    def test_the_queue_works_by_cookie_with_the_csrf_token(
        self, browser: TestClient, annotator_key: str, project_id: uuid.UUID, session: Any
    ) -> None:
        csrf = sign_in(browser, annotator_key)["csrf_token"]
        claim_path = f"/v1/projects/{project_id}/queue/claim"
        refused = browser.post(claim_path)
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_failed"
        wrong = browser.post(claim_path, headers={session_cookie.CSRF_HEADER: csrf[:-2] + "xx"})
        assert wrong.status_code == 403
        claimed = browser.post(claim_path, headers={session_cookie.CSRF_HEADER: csrf})
        assert claimed.status_code == 200, claimed.text
        assignment = claimed.json()
        assert assignment["annotator"] == "ann"
        labelled = browser.post(
            f"/v1/assignments/{assignment['assignment_id']}/label",
            json={"choice": "b", "confidence": 4},
            headers={session_cookie.CSRF_HEADER: csrf, "Idempotency-Key": "k1"},
        )
        assert labelled.status_code == 201, labelled.text
        label = session.scalars(select(Label)).one()
        pair = session.get(Pair, label.pair_id)
        assert label.annotator == "ann"
        assert label.shown_first_response_id == uuid.UUID(assignment["response_a"]["id"])
        expected = "a" if uuid.UUID(assignment["response_b"]["id"]) == pair.response_a_id else "b"
        assert pair_side(label.choice, label.shown_first_response_id, pair.response_a_id) == expected
        again = browser.post(
            f"/v1/assignments/{assignment['assignment_id']}/label",
            json={"choice": "b", "confidence": 4},
            headers={session_cookie.CSRF_HEADER: csrf, "Idempotency-Key": "k1"},
        )
        assert again.status_code == 200
        undone = browser.delete(
            f"/v1/assignments/{assignment['assignment_id']}/label", headers={session_cookie.CSRF_HEADER: csrf}
        )
        assert undone.status_code == 204

    def test_reads_need_no_csrf_token(
        self, browser: TestClient, annotator_key: str, project_id: uuid.UUID
    ) -> None:
        sign_in(browser, annotator_key)
        assert browser.get(f"/v1/projects/{project_id}/progress").status_code == 200
        listed = browser.get("/v1/me/projects").json()["items"]
        assert [p["id"] for p in listed] == [str(project_id)]

    def test_a_bearer_request_needs_no_csrf_token_even_with_a_cookie(
        self, browser: TestClient, annotator_key: str, project_id: uuid.UUID
    ) -> None:
        sign_in(browser, annotator_key)
        claimed = browser.post(f"/v1/projects/{project_id}/queue/claim", headers=bearer(annotator_key))
        assert claimed.status_code == 200

    def test_revoking_the_key_ends_its_sessions(
        self, client: Any, browser: TestClient, annotator_key: str
    ) -> None:
        sign_in(browser, annotator_key)
        assert browser.get("/v1/me").status_code == 200
        key_id = client.get("/v1/me", headers=bearer(annotator_key)).json()["key_id"]
        assert client.delete(f"/v1/keys/{key_id}").status_code == 204
        refused = browser.get("/v1/me")
        assert refused.status_code == 401
        assert refused.json()["detail"] == "this API key was revoked"

    def test_forged_and_expired_cookies_are_refused_and_counted(
        self, client: Any, browser: TestClient, annotator_key: str, override_settings: Any
    ) -> None:
        sign_in(browser, annotator_key)
        value = browser.cookies[session_cookie.SESSION_COOKIE]
        key_hex, expires, signature = value.split(".")
        secret = get_settings().secret_key.get_secret_value()
        other_key = uuid.uuid4().hex
        expired = session_cookie.issue(secret, uuid.UUID(key_hex), utcnow() - timedelta(seconds=1))
        forged = [
            f"{other_key}.{expires}.{signature}",
            f"{key_hex}.{int(expires) + 3600}.{signature}",
            session_cookie.issue("another secret", uuid.UUID(key_hex), utcnow() + timedelta(hours=1)),
            expired,
            "garbage",
        ]
        override_settings(auth_failures_per_minute=len(forged) - 1)
        statuses = []
        for cookie in forged:
            browser.cookies.clear()
            browser.cookies.set(session_cookie.SESSION_COOKIE, cookie)
            statuses.append(browser.get("/v1/me").status_code)
        # Each is refused; the last one is over the address's failed-authentication limit.
        assert statuses == [401] * (len(forged) - 1) + [429]
        browser.cookies.clear()
        browser.cookies.set(session_cookie.SESSION_COOKIE, value)
        assert browser.get("/v1/me").status_code == 200

    def test_the_key_rate_limit_counts_cookie_requests(
        self, browser: TestClient, annotator_key: str, override_settings: Any
    ) -> None:
        sign_in(browser, annotator_key)
        override_settings(rate_limit_per_minute=3)
        assert [browser.get("/v1/me").status_code for _ in range(4)] == [200, 200, 200, 429]
        # The same counter as the key's bearer requests.
        assert browser.get("/v1/me", headers=bearer(annotator_key)).status_code == 429


class TestSignOut:
    def test_sign_out_needs_the_csrf_token_and_clears_the_cookies(
        self, browser: TestClient, annotator_key: str
    ) -> None:
        csrf = sign_in(browser, annotator_key)["csrf_token"]
        assert browser.delete("/v1/session").status_code == 403
        out = browser.delete("/v1/session", headers={session_cookie.CSRF_HEADER: csrf})
        assert out.status_code == 204
        assert session_cookie.SESSION_COOKIE not in browser.cookies
        assert browser.get("/v1/me").status_code == 401

    def test_signing_out_without_a_session_is_harmless(self, browser: TestClient) -> None:
        assert browser.delete("/v1/session").status_code == 204


class TestSessionCookie:
    def test_round_trip_and_tamper(self) -> None:
        key_id = uuid.uuid4()
        now = utcnow()
        value = session_cookie.issue("s" * 32, key_id, now + timedelta(minutes=5))
        assert session_cookie.verify("s" * 32, value, now) == key_id
        token = session_cookie.csrf_token("s" * 32, value)
        assert session_cookie.csrf_valid("s" * 32, value, token)
        assert not session_cookie.csrf_valid("s" * 32, value, None)
        assert not session_cookie.csrf_valid("s" * 32, value, token + "é")
        other = session_cookie.issue("s" * 32, key_id, now + timedelta(minutes=6))
        assert not session_cookie.csrf_valid("s" * 32, other, token)  # bound to its own cookie
        with pytest.raises(Exception, match="expired"):
            session_cookie.verify("s" * 32, value, now + timedelta(minutes=5))
