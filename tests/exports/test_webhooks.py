"""Export webhooks against a real HTTP server on 127.0.0.1 that checks signatures with the documented code."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.config import get_settings
from app.db.base import utcnow
from app.exports import tasks as exports
from app.schedules import tasks as schedules
from app.schedules.models import ExportSchedule
from app.webhooks import service as webhooks
from app.webhooks import signing
from app.webhooks import tasks as webhook_tasks
from app.webhooks.models import ExportWebhook, WebhookDelivery
from tests.exports.helpers import T0, at, label, run_export
from tests.factories import make_pairs, make_project

DOCS = Path(__file__).resolve().parents[2] / "docs" / "exports.md"


def documented_verifier() -> Any:
    """`verify_signature` exactly as docs/exports.md shows it to receivers."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    [snippet] = [b for b in blocks if b.startswith("# real-align webhook signature check")]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)
    return namespace["verify_signature"]


class Receiver:
    """A local webhook endpoint: answers with the scripted statuses in turn (then 200), records each call."""

    def __init__(self) -> None:
        self.script: list[int | tuple[int, dict[str, str]]] = []
        self.calls: list[dict[str, Any]] = []
        self.secret: str | None = None
        self.delay = 0.0
        self.verify = documented_verifier()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("Real-Signature", "")
                receiver.calls.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "valid": receiver.secret is not None
                        and receiver.verify(receiver.secret, header, body),
                    }
                )
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = receiver.script.pop(0) if receiver.script else 200
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                reply = b"nope, try later" if status >= 400 else b"ok"
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/real-align"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _record(recorded_tasks: list[Any], override_settings: Any) -> None:
    """Deliveries are made by the test calling `deliver`, never by a background thread; the receiver is on
    127.0.0.1, which the default refuses (test_a_private_target_is_refused_by_default)."""
    override_settings(webhook_allow_private_targets=True)


def seed(db: Any) -> str:
    with db.session() as s:
        project = make_project(s)
        for n, pair in enumerate(make_pairs(s, project, 3)):
            label(s, pair, "ann1", "a" if n % 2 else "b", at(n + 1))
        return str(project.id)


def hook(client: Any, pid: str, receiver: Receiver) -> dict[str, Any]:
    answer = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": receiver.url})
    assert answer.status_code == 200, answer.text
    receiver.secret = answer.json()["secret"]
    return dict(answer.json())


def only_delivery(db: Any) -> WebhookDelivery:
    with db.session() as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
        return delivery


def deliveries(client: Any, pid: str, **params: Any) -> list[dict[str, Any]]:
    answer = client.get(f"/v1/projects/{pid}/webhook-deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


class TestDelivery:
    def test_two_500s_then_success_after_three_attempts(
        self, client: Any, db: Any, receiver: Receiver, recorded_tasks: list[Any]
    ) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run = run_export(db, uuid.UUID(pid))
        delivery = only_delivery(db)
        # The first attempt is sent as a task after the export's commit.
        assert ("webhooks.deliver", {"delivery_id": str(delivery.id)}) in recorded_tasks
        receiver.script = [500, 500]
        t0 = utcnow()

        assert webhook_tasks.deliver(str(delivery.id), now=t0) == "pending"
        row = only_delivery(db)
        assert (row.attempts, row.last_status_code) == (1, 500)
        assert row.next_attempt_at == t0 + timedelta(seconds=30)
        assert row.last_error.startswith("HTTP 500: nope")

        # Not due yet: no request, whoever asks.
        assert webhook_tasks.deliver(str(delivery.id), now=t0 + timedelta(seconds=10)) == "pending"
        assert webhook_tasks.sweep(now=t0 + timedelta(seconds=29)) == []
        assert len(receiver.calls) == 1

        assert webhook_tasks.sweep(now=t0 + timedelta(seconds=31)) == [str(delivery.id)]
        assert webhook_tasks.deliver(str(delivery.id), now=t0 + timedelta(seconds=31)) == "pending"
        assert only_delivery(db).next_attempt_at == t0 + timedelta(seconds=31 + 60)

        assert webhook_tasks.deliver(str(delivery.id), now=t0 + timedelta(seconds=95)) == "succeeded"
        assert webhook_tasks.sweep(now=t0 + timedelta(days=1)) == []
        assert len(receiver.calls) == 3
        assert all(call["valid"] for call in receiver.calls)
        assert {call["headers"]["Real-Delivery"] for call in receiver.calls} == {str(delivery.id)}
        assert all(call["path"] == "/hooks/real-align" for call in receiver.calls)

        body = json.loads(receiver.calls[-1]["body"])
        assert body["event"] == "export.succeeded"
        assert body["delivery_id"] == str(delivery.id)
        assert body["export"]["id"] == str(run.id)
        assert body["export"]["project_id"] == pid
        assert (body["export"]["sha256"], body["export"]["rows"]) == (run.sha256, run.rows)
        assert body["export"]["manifest"]["rows"] == run.rows
        assert body["export"]["manifest"]["label_counts"] == {"a": 1, "b": 2, "tie": 0, "both_bad": 0}
        assert body["export"]["file_name"] == "data.jsonl"
        assert receiver.calls[-1]["headers"]["Real-Event"] == "export.succeeded"
        # Each attempt is signed at its own time.
        stamps = [re.match(r"t=(\d+),v1=", c["headers"]["Real-Signature"]) for c in receiver.calls]
        assert [int(m.group(1)) for m in stamps if m] == [
            int((t0 + timedelta(seconds=s)).timestamp()) for s in (0, 31, 95)
        ]

        [listed] = deliveries(client, pid)
        assert listed["status"] == "succeeded"
        assert (listed["attempts"], listed["last_status_code"]) == (3, 200)
        assert listed["export_id"] == str(run.id)
        assert listed["url"] == receiver.url
        assert listed["delivered_at"] is not None
        assert deliveries(client, pid, status="pending") == []

    def test_a_4xx_fails_at_once(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        receiver.script = [410]
        delivery = only_delivery(db)
        t0 = utcnow()
        assert webhook_tasks.deliver(str(delivery.id), now=t0) == "failed"
        assert webhook_tasks.sweep(now=t0 + timedelta(days=1)) == []
        assert webhook_tasks.deliver(str(delivery.id), now=t0 + timedelta(days=1)) == "failed"
        assert len(receiver.calls) == 1
        [listed] = deliveries(client, pid, status="failed")
        assert (listed["attempts"], listed["last_status_code"]) == (1, 410)
        assert listed["next_attempt_at"] is None

    def test_429_waits_for_retry_after(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        receiver.script = [(429, {"Retry-After": "120"})]
        delivery = only_delivery(db)
        t0 = utcnow()
        assert webhook_tasks.deliver(str(delivery.id), now=t0) == "pending"
        assert only_delivery(db).next_attempt_at == t0 + timedelta(seconds=120)

    def test_redirects_are_not_followed(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        receiver.script = [(307, {"Location": receiver.url + "/elsewhere"})]
        assert webhook_tasks.deliver(str(only_delivery(db).id), now=utcnow()) == "failed"
        assert [c["path"] for c in receiver.calls] == ["/hooks/real-align"]
        assert "redirects are not followed" in (only_delivery(db).last_error or "")

    def test_a_timeout_is_retried_and_attempts_run_out(
        self, client: Any, db: Any, receiver: Receiver, override_settings: Any
    ) -> None:
        override_settings(webhook_timeout_seconds=0.2, webhook_max_attempts=2)
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        delivery = only_delivery(db)
        receiver.delay = 0.6
        t0 = utcnow()
        assert webhook_tasks.deliver(str(delivery.id), now=t0) == "pending"
        row = only_delivery(db)
        assert row.last_status_code is None
        assert "timed out" in (row.last_error or "")
        receiver.delay = 0.0
        receiver.script = [503]
        assert webhook_tasks.deliver(str(delivery.id), now=t0 + timedelta(minutes=5)) == "failed"
        assert only_delivery(db).attempts == 2

    def test_a_connection_refused_is_retried(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        receiver.close()  # nothing listens on that port any more
        assert webhook_tasks.deliver(str(only_delivery(db).id), now=utcnow()) == "pending"
        assert "ConnectError" in (only_delivery(db).last_error or "")

    def test_one_attempt_at_a_time(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        delivery = only_delivery(db)
        receiver.delay = 0.5
        t0 = utcnow()
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(webhook_tasks.deliver(str(delivery.id), now=t0)))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        # While the first attempt is in flight the delivery is held, so a sweep leaves it alone.
        assert webhook_tasks.sweep(now=t0 + timedelta(seconds=5)) == []
        for thread in threads:
            thread.join(10)
        assert sorted(results) == ["pending", "succeeded"]
        assert len(receiver.calls) == 1
        assert only_delivery(db).attempts == 1

    def test_scheduled_exports_notify_too(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        assert (
            client.put(f"/v1/projects/{pid}/export-schedule", json={"every_seconds": 3600}).status_code == 200
        )
        with db.session() as s:
            s.get_one(ExportSchedule, uuid.UUID(pid)).next_run_at = T0 + timedelta(hours=1)
        [export_id] = schedules.run_schedules(now=T0 + timedelta(hours=1))
        exports.run_export(export_id)
        assert webhook_tasks.deliver(str(only_delivery(db).id)) == "succeeded"
        assert json.loads(receiver.calls[0]["body"])["export"]["id"] == export_id
        assert receiver.calls[0]["valid"]

    def test_no_webhook_no_delivery_and_once_per_export(
        self, client: Any, db: Any, receiver: Receiver
    ) -> None:
        pid = seed(db)
        run = run_export(db, uuid.UUID(pid))
        with db.session() as s:
            assert s.scalars(select(WebhookDelivery)).all() == []
        hook(client, pid, receiver)
        with db.session() as s:
            webhooks.export_succeeded(s, run.id)
        with db.session() as s:
            webhooks.export_succeeded(s, run.id)  # again: no second delivery
        only_delivery(db)

    def test_a_removed_webhook_fails_its_pending_deliveries(
        self, client: Any, db: Any, receiver: Receiver
    ) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        run_export(db, uuid.UUID(pid))
        assert client.delete(f"/v1/projects/{pid}/export-webhook").status_code == 204
        assert webhook_tasks.deliver(str(only_delivery(db).id), now=utcnow()) == "failed"
        assert receiver.calls == []
        assert only_delivery(db).last_error == "the project has no webhook any more"


class TestWebhookApi:
    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/hook",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://",
            "example.com/hook",
            "https://exa mple.com/",
            "http://example.com:99999/",
            "",
        ],
    )
    def test_bad_urls_are_422_naming_the_field(self, client: Any, db: Any, url: str) -> None:
        pid = seed(db)
        answer = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": url})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == ["body.url"]

    def test_secret_shown_on_create_and_rotate_only(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        assert client.get(f"/v1/projects/{pid}/export-webhook").status_code == 404
        created = hook(client, pid, receiver)
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert created["secret_version"] == 1
        assert client.get(f"/v1/projects/{pid}/export-webhook").json()["secret"] is None

        moved = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": receiver.url + "?v=2"}).json()
        assert (moved["secret"], moved["secret_version"], moved["url"]) == (None, 1, receiver.url + "?v=2")

        rotated = client.post(f"/v1/projects/{pid}/export-webhook/rotate-secret").json()
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != secret
        assert rotated["secret_version"] == 2

        # Nothing secret is at rest: the row holds a salt, never the secret itself.
        with db.session() as s:
            row = s.get_one(ExportWebhook, uuid.UUID(pid))
            assert rotated["secret"] not in json.dumps([row.url, row.secret_salt])
            assert webhooks.secret_of(row) == rotated["secret"]
            audit = list(
                s.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.action.like("export_webhook.%"))
                    .order_by(AuditEvent.id)
                )
            )
            details = json.dumps(list(s.scalars(select(AuditEvent.details))))
        assert audit == ["export_webhook.created", "export_webhook.updated", "export_webhook.secret_rotated"]
        assert secret not in details
        assert rotated["secret"] not in details

        # Deliveries are signed with the current secret.
        receiver.secret = rotated["secret"]
        run_export(db, uuid.UUID(pid))
        assert webhook_tasks.deliver(str(only_delivery(db).id)) == "succeeded"
        assert receiver.calls[0]["valid"]
        assert receiver.calls[0]["path"] == "/hooks/real-align?v=2"

        assert client.delete(f"/v1/projects/{pid}/export-webhook").status_code == 204
        assert client.get(f"/v1/projects/{pid}/export-webhook").status_code == 404
        assert client.post(f"/v1/projects/{pid}/export-webhook/rotate-secret").status_code == 404
        # Re-created: a new secret, not the old one back.
        again = hook(client, pid, receiver)
        assert again["secret"] not in (secret, rotated["secret"])

    def test_deliveries_are_cursor_paginated(self, client: Any, db: Any, receiver: Receiver) -> None:
        pid = seed(db)
        hook(client, pid, receiver)
        ids = [str(run_export(db, uuid.UUID(pid)).id) for _ in range(3)]
        first = client.get(f"/v1/projects/{pid}/webhook-deliveries", params={"limit": 2}).json()
        assert len(first["items"]) == 2
        rest = client.get(
            f"/v1/projects/{pid}/webhook-deliveries", params={"limit": 2, "cursor": first["next_cursor"]}
        ).json()
        assert rest["next_cursor"] is None
        assert [d["export_id"] for d in first["items"] + rest["items"]] == ids[::-1]


class TestSigning:
    def test_reference_verify_agrees_with_the_documented_snippet(self) -> None:
        secret = signing.derive_secret(get_settings().secret_key.get_secret_value(), uuid.uuid4(), "salt")
        body = b'{"event":"export.succeeded"}'
        now = int(time.time())
        header = signing.signature_header(secret, now, body)
        documented = documented_verifier()
        assert documented(secret, header, body)
        assert signing.verify(secret, header, body, now=now)
        for bad_body, bad_secret, when in [
            (body + b" ", secret, now),
            (body, secret + "x", now),
            (body, secret, now - 301),
        ]:
            stale = signing.signature_header(bad_secret, when, body)
            assert not documented(secret, stale, bad_body)
            assert not signing.verify(secret, stale, bad_body, now=now)

    def test_the_signature_is_hmac_sha256_of_t_dot_body(self) -> None:
        import hashlib
        import hmac

        expected = hmac.new(b"whsec_k", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert signing.signature_header("whsec_k", 1_700_000_000, b"{}") == f"t=1700000000,v1={expected}"


def test_backoff_doubles_and_is_capped(override_settings: Any) -> None:
    override_settings(webhook_backoff_seconds=30, webhook_backoff_max_seconds=200)
    settings = get_settings()
    assert [webhooks.backoff_seconds(n, settings) for n in range(1, 6)] == [30, 60, 120, 200, 200]


def test_a_private_target_is_refused_by_default(
    client: Any, db: Any, receiver: Receiver, override_settings: Any
) -> None:
    override_settings(webhook_allow_private_targets=False)
    pid = seed(db)
    hook(client, pid, receiver)
    run_export(db, uuid.UUID(pid))
    delivery = only_delivery(db)
    assert webhook_tasks.deliver(str(delivery.id)) == "failed"  # at once, never retried
    stored = only_delivery(db)
    assert stored.attempts == 1
    assert stored.last_error is not None
    assert "non-global address 127.0.0.1" in stored.last_error
    assert receiver.calls == []  # nothing was sent
