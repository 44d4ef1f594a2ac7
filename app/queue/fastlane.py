"""A claim or label request's whole work, and the one-statement lane for an annotator's own key on Postgres.

claim_request / label_request (called by app/queue/router.py in one thread hop, with the request's
credentials as plain values) send a request down the lane when it can take it: Postgres, a well-formed API
key that is not the bootstrap admin key, and (for a claim) no `annotator` on behalf of someone else;
anything else (a browser's session cookie included) runs as a unit of work (auth, service, commit). The SQL
functions real_queue_claim_as / real_queue_label_as resolve the key by its HMAC, apply the checks of
app/auth/service.authenticate, the annotator role check and the project or assignment visibility check,
then run real_queue_claim / real_queue_label, the same functions the unit-of-work path calls. Each runs in
autocommit: one statement, one transaction, no BEGIN or COMMIT round trips.

Errors are the same domain errors as on the other path (401 and the failed-authentication count, 403, 404,
409, 429); the per-key rate limit is counted before the work (against the key's HMAC, the counter every
route uses), so a 429 never hides a claim that was made.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Connection

from app import logging as logcontext
from app import metrics
from app.auth import guard, keys
from app.auth.context import rate_key_for
from app.auth.guard import ANNOTATOR_ROLES, Credentials
from app.auth.models import Role
from app.config import get_settings
from app.db.session import get_database
from app.errors import Forbidden, NotFound, Unauthorized
from app.projects import service as projects
from app.quality import service as quality
from app.queue import repository, service
from app.queue.repository import CallerOutcome
from app.queue.schemas import ClaimRequest, LabelRequest

_AUTH_REFUSALS = {
    "unknown_key": "unknown API key",
    "revoked_key": "this API key was revoked",
    "expired_key": "this API key has expired",
}


def claim_request(
    credentials: Credentials, project_id: uuid.UUID, now: datetime, body: ClaimRequest | None
) -> tuple[str, str, service.Claimed | str]:
    """(annotator, the project's instructions, Claimed or a QueueReason): the lane, or a unit of work;
    counted by outcome (app/metrics.py) whichever way it went."""
    annotator, instructions, result = _claim_request(credentials, project_id, now, body)
    metrics.CLAIMS.labels(result if isinstance(result, str) else "claimed").inc()
    return annotator, instructions, result


def _claim_request(
    credentials: Credentials, project_id: uuid.UUID, now: datetime, body: ClaimRequest | None
) -> tuple[str, str, service.Claimed | str]:
    on_behalf = body is not None and body.annotator is not None
    raw = None if on_behalf else lane_key(credentials)
    if raw is not None:
        return claim(credentials.client, raw, project_id, now)
    with get_database().session() as session:
        caller = guard.check_role(guard.authenticate(session, credentials, now), ANNOTATOR_ROLES)
        annotator = caller.name
        if body is not None and body.annotator is not None and not caller.is_admin:
            raise Forbidden("only admin keys may claim on behalf of another annotator", field="annotator")
        project = projects.get_active(session, caller, project_id)
        if body is not None and body.annotator is not None:
            annotator = service.on_behalf_of(session, project, body.annotator)
        return annotator, project.instructions, service.claim(session, project, annotator, now)


def label_request(
    credentials: Credentials,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> tuple[repository.StoredLabel, bool]:
    """(label, created): the lane, or a unit of work; a new label asks for its project's aggregation.
    Counted (app/metrics.py) as created or replayed, and the request's log lines name the project."""
    stored, created = _label_request(credentials, assignment_id, body, now, idempotency_key)
    metrics.LABELS.labels("created" if created else "replayed").inc()
    logcontext.annotate(project_id=str(stored.project_id))
    return stored, created


def _label_request(
    credentials: Credentials,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> tuple[repository.StoredLabel, bool]:
    raw = lane_key(credentials)
    if raw is not None:
        stored, created = label(credentials.client, raw, assignment_id, body, now, idempotency_key)
        if created:
            quality.schedule_aggregate_now(stored.project_id)
        return stored, created
    with get_database().session() as session:
        caller = guard.check_role(guard.authenticate(session, credentials, now), ANNOTATOR_ROLES)
        assignment = service.get_assignment(session, caller, assignment_id)
        stored, created = service.label(session, assignment, body, now, idempotency_key)
        quality.schedule_aggregate(session, stored.project_id)
    return stored, created


def lane_key(credentials: Credentials) -> str | None:
    """The raw API key if this request can take the lane; None sends it the unit-of-work way."""
    settings = get_settings()
    raw = credentials.key
    if not raw or settings.is_sqlite or not settings.queue_fastlane:
        return None
    if (credentials.bootstrap_key and raw == credentials.bootstrap_key) or not keys.well_formed(raw):
        return None  # the bootstrap admin has no key row; a malformed key gets its 401 there
    return raw


def _connect() -> Connection:
    return get_database().engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _key_hash(raw: str) -> str:
    """The key's HMAC; its rate limit is counted now, before any work (429 leaves nothing done)."""
    key_hash = keys.hash_key(raw, get_settings().secret_key.get_secret_value())
    guard.count_request(rate_key_for(key_hash))
    return key_hash


def _check_caller(client: str, found: CallerOutcome, missing: str) -> None:
    """Raise what the other path raises for this caller outcome of real_queue_caller."""
    outcome = found.outcome
    if outcome in _AUTH_REFUSALS:
        with guard.counting_auth_failures(client):
            raise Unauthorized(_AUTH_REFUSALS[outcome])
    if outcome == "forbidden_role":
        raise Forbidden(f"the {Role(found.role or '').value} role may not do this")
    if outcome in ("no_project", "no_assignment"):
        raise NotFound(missing)


def claim(
    client: str, raw: str, project_id: uuid.UUID, now: datetime
) -> tuple[str, str, service.Claimed | str]:
    """(annotator, the project's instructions, Claimed or a QueueReason) for the key's principal."""
    cap = get_settings().max_active_leases_per_annotator
    params = {
        "key_hash": _key_hash(raw),
        "project": project_id,
        "now": now,
        "cap": cap,
        "gold_draw": service.gold_draw(),
    }
    with _connect() as conn:
        caller, found = repository.claim_as(conn, params)
    _check_caller(client, caller, f"no project {project_id}")
    assert found is not None  # refused above otherwise
    assert caller.name is not None
    result = service.claimed_or_reason(found, caller.name, cap, now)
    instructions = found.instructions if isinstance(found, repository.LeaseTaken) else ""
    return caller.name, instructions, result


def label(
    client: str,
    raw: str,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> tuple[repository.StoredLabel, bool]:
    """(label, created) for the key's principal's assignment."""
    fingerprint = service.request_fingerprint(assignment_id, body)
    params = service.label_params(assignment_id, body, now, idempotency_key, fingerprint)
    params["key_hash"] = _key_hash(raw)
    with _connect() as conn:
        caller, found = repository.label_as(conn, params)
    _check_caller(client, caller, f"no assignment {assignment_id}")
    assert found is not None  # refused above otherwise
    return service.label_or_refusal(found, assignment_id)
