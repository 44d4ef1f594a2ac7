"""Export webhooks: configure a project's URL, enqueue an `export.succeeded` event, deliver it with retries.

Every export of a project with a webhook that succeeds — scheduled or started through the API — gets one
delivery row, written in the same transaction that marks the export succeeded (``export_succeeded``, called
by the ``exports.run_export`` task), so no event is lost between the two. The task ``webhooks.deliver``
(``app/webhooks/tasks.py``) makes one attempt; the periodic ``webhooks.sweep`` re-sends the pending
deliveries that are due, so retries survive worker restarts. Delivery is at least once: receivers should
ignore a `Real-Delivery` id they have already processed.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.pagination import PageRows
from app.audit import service as audit
from app.auth.context import Caller
from app.config import Settings, get_settings
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.db.ids import uuid7
from app.errors import NotFound
from app.exports import writers
from app.exports.models import ExportRun
from app.exports.schemas import iso
from app.projects.models import Project
from app.webhooks import repository, signing
from app.webhooks.models import DeliveryStatus, ExportWebhook, WebhookDelivery
from app.webhooks.schemas import ExportWebhookRead, ExportWebhookSet

log = logging.getLogger(__name__)

EXPORT_SUCCEEDED = "export.succeeded"
USER_AGENT = "real-align-webhooks/1"
# An attempt in flight holds its delivery this long past the request timeout before a sweep may retry it.
HOLD_MARGIN_SECONDS = 30.0
ERROR_BODY_BYTES = 300


# ------------------------------------------------------------------------------------------- the webhook


def secret_of(webhook: ExportWebhook, settings: Settings | None = None) -> str:
    """The webhook's current signing secret, derived from REAL_SECRET_KEY (never stored)."""
    key = (settings or get_settings()).secret_key.get_secret_value()
    return signing.derive_secret(key, webhook.project_id, webhook.secret_salt)


def get(session: Session, project: Project) -> ExportWebhook:
    """The project's webhook, or 404."""
    webhook = session.get(ExportWebhook, project.id)
    if webhook is None:
        raise NotFound(f"project {project.id} has no export webhook")
    return webhook


def put(session: Session, caller: Caller, project: Project, body: ExportWebhookSet) -> ExportWebhookRead:
    """Set the URL. A new webhook gets a secret, shown in this answer only; a URL change keeps the secret."""
    # Serialises concurrent PUTs of one project (NO KEY UPDATE: foreign-key checks are not blocked).
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update(key_share=True))
    webhook = session.get(ExportWebhook, project.id, populate_existing=True)
    created = webhook is None
    if webhook is None:
        webhook = ExportWebhook(project_id=project.id, secret_salt=secrets.token_hex(16), secret_version=1)
        session.add(webhook)
    webhook.url = body.url
    session.flush()
    audit.record(
        session,
        caller,
        "export_webhook.created" if created else "export_webhook.updated",
        "project",
        project.id,
        {"url": body.url, "secret_version": webhook.secret_version},
    )
    return read(webhook, secret=secret_of(webhook) if created else None)


def rotate_secret(session: Session, caller: Caller, project: Project) -> ExportWebhookRead:
    """A new signing secret (the old one stops working at once); shown in this answer only."""
    webhook = get(session, project)
    webhook.secret_salt = secrets.token_hex(16)
    webhook.secret_version += 1
    session.flush()
    audit.record(
        session,
        caller,
        "export_webhook.secret_rotated",
        "project",
        project.id,
        {"secret_version": webhook.secret_version},
    )
    return read(webhook, secret=secret_of(webhook))


def delete(session: Session, caller: Caller, project: Project) -> None:
    """Remove the webhook (no-op if there is none); pending deliveries then fail at their next attempt."""
    webhook = session.get(ExportWebhook, project.id)
    if webhook is None:
        return
    session.delete(webhook)
    session.flush()
    audit.record(session, caller, "export_webhook.deleted", "project", project.id, {"url": webhook.url})


def read(webhook: ExportWebhook, secret: str | None = None) -> ExportWebhookRead:
    """The API view of a webhook (the secret only when given)."""
    return ExportWebhookRead(
        project_id=webhook.project_id,
        url=webhook.url,
        secret_version=webhook.secret_version,
        secret=secret,
        created_at=webhook.created_at,
        updated_at=webhook.updated_at,
    )


def list_deliveries(
    session: Session, project: Project, *, limit: int, cursor: str | None, status: str | None
) -> PageRows[WebhookDelivery]:
    """A page of the project's deliveries, newest first."""
    return repository.page(session, project.id, limit=limit, cursor=cursor, status=status)


# ------------------------------------------------------------------------------------------- events


def export_succeeded(session: Session, export_id: uuid.UUID) -> None:
    """Enqueue the `export.succeeded` delivery of a just-succeeded export, if its project has a webhook.

    Called inside the transaction that marks the export succeeded; the first attempt is sent after commit.
    """
    run = session.get(ExportRun, export_id)
    if run is None or session.get(ExportWebhook, run.project_id) is None:
        return
    exists = session.scalar(
        select(WebhookDelivery.id).where(
            WebhookDelivery.export_id == export_id, WebhookDelivery.event == EXPORT_SUCCEEDED
        )
    )
    if exists is not None:
        return
    delivery_id = uuid7()
    now = utcnow()
    session.add(
        WebhookDelivery(
            id=delivery_id,
            project_id=run.project_id,
            export_id=run.id,
            event=EXPORT_SUCCEEDED,
            payload=export_event(run, delivery_id, now),
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    session.flush()
    send_after_commit(session, "webhooks.deliver", delivery_id=str(delivery_id))


def export_event(run: ExportRun, delivery_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """The JSON body of an `export.succeeded` event."""
    manifest = run.manifest or {}
    counts = manifest.get("counts", {})
    return {
        "event": EXPORT_SUCCEEDED,
        "delivery_id": str(delivery_id),
        "created_at": iso(now),
        "export": {
            "id": str(run.id),
            "project_id": str(run.project_id),
            "status": run.status,
            "format": run.format,
            "style": run.style,
            "compression": run.compression,
            "snapshot_at": iso(run.snapshot_at),
            "since": str(run.since_export_id) if run.since_export_id else None,
            "since_snapshot_at": iso(run.since_snapshot_at) if run.since_snapshot_at else None,
            "filters": run.filters or {},
            "rows": run.rows,
            "sha256": run.sha256,
            "bytes": run.bytes,
            "file_name": writers.data_file_name(run.format, run.compression),
            "media_type": writers.media_type(run.format, run.compression),
            "finished_at": iso(run.finished_at) if run.finished_at else None,
            "manifest": {
                "schema_version": manifest.get("schema_version"),
                "code_version": manifest.get("code_version"),
                "rows": counts.get("rows"),
                "excluded": counts.get("excluded"),
                "label_counts": counts.get("labels"),
            },
            "links": {
                "export": f"/v1/exports/{run.id}",
                "file": f"/v1/exports/{run.id}/file",
                "manifest": f"/v1/exports/{run.id}/manifest",
            },
        },
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ------------------------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class Outcome:
    """What one POST gave: success, or an error that is worth retrying or not."""

    succeeded: bool
    retryable: bool
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


def backoff_seconds(attempt: int, settings: Settings) -> float:
    """The wait after failed attempt number `attempt` (1-based): doubling, capped."""
    return float(
        min(settings.webhook_backoff_seconds * 2 ** (attempt - 1), settings.webhook_backoff_max_seconds)
    )


@dataclass(frozen=True)
class Attempting:
    """A delivery attempt taken by ``start_attempt``: what to send, and its number (1-based)."""

    attempt: int
    url: str
    event: str
    body: bytes
    secret: str


def start_attempt(session: Session, delivery_id: uuid.UUID, started: datetime) -> Attempting | str:
    """Take the next attempt at a pending delivery that is due; or, when there is none to make, the
    delivery's status (``missing`` if it is gone).

    The attempt is taken with a compare-and-set on the attempt count, so of two callers (the task sent
    after commit and a sweep) one sends.
    """
    settings = get_settings()
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return "missing"
    if delivery.status != DeliveryStatus.PENDING:
        return delivery.status
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > started:
        return delivery.status
    webhook = session.get(ExportWebhook, delivery.project_id)
    attempts = delivery.attempts
    if webhook is None:
        repository.finish_attempt(
            session,
            delivery_id,
            attempts,
            status=DeliveryStatus.FAILED,
            next_attempt_at=None,
            last_error="the project has no webhook any more",
        )
        return DeliveryStatus.FAILED
    hold = started + timedelta(seconds=settings.webhook_timeout_seconds + HOLD_MARGIN_SECONDS)
    if not repository.start_attempt(
        session, delivery_id, attempts=attempts, now=started, hold_until=hold, url=webhook.url
    ):
        return DeliveryStatus.PENDING
    return Attempting(
        attempt=attempts + 1,
        url=webhook.url,
        event=delivery.event,
        body=encode(delivery.payload),
        secret=secret_of(webhook, settings),
    )


def send(attempting: Attempting, delivery_id: uuid.UUID, started: datetime) -> Outcome:
    """Make the attempt (no database: a network call of up to the timeout); `started` dates the signature."""
    settings = get_settings()
    address = None
    if not settings.webhook_allow_private_targets:
        address, refused = checked_address(attempting.url)
        if refused is not None:
            return Outcome(False, False, None, refused)
    timeout = settings.webhook_timeout_seconds
    return post(
        attempting.url,
        attempting.body,
        attempting.secret,
        delivery_id,
        attempting.event,
        int(started.timestamp()),
        timeout,
        address=address,
    )


def finish_attempt(
    session: Session, delivery_id: uuid.UUID, attempt: int, outcome: Outcome, finished: datetime
) -> str:
    """Record the attempt's outcome: succeeded, pending with the next attempt's time, or failed (not
    retryable, or the last attempt); the delivery's status afterwards."""
    settings = get_settings()
    values: dict[str, Any] = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.succeeded:
        status = DeliveryStatus.SUCCEEDED
        values |= {"delivered_at": finished, "next_attempt_at": None}
    elif outcome.retryable and attempt < settings.webhook_max_attempts:
        status = DeliveryStatus.PENDING
        wait = backoff_seconds(attempt, settings)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, settings.webhook_backoff_max_seconds))
        values["next_attempt_at"] = finished + timedelta(seconds=wait)
    else:
        status = DeliveryStatus.FAILED
        values["next_attempt_at"] = None
    values["status"] = status
    recorded = repository.finish_attempt(session, delivery_id, attempt, **values)
    log.info(
        "webhooks.attempted",
        extra={
            "delivery_id": str(delivery_id),
            "attempt": attempt,
            "status": status,
            "status_code": outcome.status_code,
            "recorded": recorded,
        },
    )
    return status


def _may_call(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global


def checked_address(url: str) -> tuple[str | None, str | None]:
    """(the address to connect to, None), or (None, why the URL's host must not be called).

    The name is resolved once, at each attempt (it can be re-pointed later), and every address it has
    must be global; the attempt then connects to the first of them (post(address=...)), so an answer
    that changes between this check and the connection (DNS rebinding) cannot reach another address.
    """
    host = httpx.URL(url).raw_host.decode("ascii")
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        return None, f"refused: {host!r} does not resolve ({exc})"
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not _may_call(address):
            return None, (
                f"refused: {host!r} resolves to the non-global address {address} "
                "(set REAL_WEBHOOK_ALLOW_PRIVATE_TARGETS=true for an internal receiver)"
            )
    if not addresses:
        return None, f"refused: {host!r} has no address"
    return str(addresses[0]), None


def post(
    url: str,
    body: bytes,
    secret: str,
    delivery_id: uuid.UUID,
    event: str,
    timestamp: int,
    timeout: float,
    *,
    address: str | None = None,
) -> Outcome:
    """POST the signed body once; never follows redirects and reads at most a little of the answer.

    With `address` (checked_address's), the connection goes to that address, not to whatever the name
    resolves to now; the Host header and the TLS server name (SNI, and the certificate check) stay the
    URL's name.
    """
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.SIGNATURE_HEADER: signing.signature_header(secret, timestamp, body),
        signing.DELIVERY_HEADER: str(delivery_id),
        signing.EVENT_HEADER: event,
    }
    target = httpx.URL(url)
    extensions: dict[str, Any] = {}
    if address is not None:
        headers["Host"] = target.netloc.decode("ascii")
        extensions["sni_hostname"] = target.raw_host.decode("ascii")
        target = target.copy_with(host=address)
    try:
        with (
            httpx.Client(follow_redirects=False, timeout=timeout) as client,
            client.stream("POST", target, content=body, headers=headers, extensions=extensions) as response,
        ):
            code = response.status_code
            if 200 <= code < 300:
                return Outcome(succeeded=True, retryable=False, status_code=code)
            if 300 <= code < 400:
                location = response.headers.get("location", "")
                return Outcome(
                    False, False, code, f"HTTP {code}: redirects are not followed ({location[:200]})"
                )
            snippet = _head(response)
            error = f"HTTP {code}" + (f": {snippet}" if snippet else "")
            retryable = code >= 500 or code in (408, 429)
            return Outcome(False, retryable, code, error, _retry_after(response.headers.get("retry-after")))
    except httpx.TimeoutException as exc:
        return Outcome(False, True, None, f"timed out after {timeout:g} s: {type(exc).__name__}")
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return Outcome(False, False, None, f"invalid URL: {exc}")
    except httpx.HTTPError as exc:
        return Outcome(False, True, None, f"{type(exc).__name__}: {exc}"[:500])


def _head(response: httpx.Response) -> str:
    read = b""
    try:
        for chunk in response.iter_raw():
            read += chunk
            if len(read) >= ERROR_BODY_BYTES:
                break
    except httpx.HTTPError:
        pass
    return read[:ERROR_BODY_BYTES].decode("utf-8", "replace").strip()


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is rare for webhooks; the backoff applies then
    return float(value.strip())


def due_deliveries(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Pending deliveries that are due (first attempts whose send was lost, retries after their backoff,
    attempts whose worker died)."""
    return [str(d) for d in repository.due_ids(session, now, limit)]
