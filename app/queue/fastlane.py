"""A claim or label request's whole work, and the one-statement lane for an annotator's own key on Postgres.

claim_request / label_request (called by app/queue/router.py in one thread hop) send a request down the lane
when it can take it: Postgres, a well-formed API key that is not the bootstrap admin key, and (for a claim) no
`annotator` on behalf of someone else; anything else runs as a unit of work (auth, service, commit). The
SQL functions real_queue_claim_as / real_queue_label_as resolve the key by its HMAC, apply the checks of
app/auth/service.authenticate, the annotator role check and the project or assignment visibility check, then
run real_queue_claim / real_queue_label, the same functions the unit-of-work path calls. Each runs in
autocommit: one statement, one transaction, no BEGIN or COMMIT round trips.

Errors are the same domain errors as on the other path (401 and the failed-authentication count, 403, 404,
409, 429); the per-key rate limit is counted before the work, so a 429 never hides a claim that was made.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import Connection

from app.api.deps import ANNOTATOR_ROLES, check_role, count_request, counting_auth_failures, get_caller
from app.auth import keys
from app.auth import service as auth
from app.auth.models import Role
from app.config import get_settings
from app.db.session import get_database
from app.errors import Forbidden, NotFound, Unauthorized
from app.projects import service as projects
from app.quality import service as quality
from app.queue import repository, service
from app.queue.models import Label
from app.queue.schemas import ClaimRequest, LabelRequest

# An API key's HMAC names one key row for ever, so its id (what rate limits count against) can be kept.
_key_ids: dict[str, uuid.UUID] = {}
_KEY_IDS_KEPT = 100_000

_AUTH_REFUSALS = {
    "unknown_key": "unknown API key",
    "revoked_key": "this API key was revoked",
    "expired_key": "this API key has expired",
}


def claim_request(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    project_id: uuid.UUID,
    now: datetime,
    body: ClaimRequest | None,
) -> tuple[str, str, service.Claimed | str]:
    """(annotator, the project's instructions, Claimed or a QueueReason): the lane, or a unit of work."""
    on_behalf = body is not None and body.annotator is not None
    raw = None if on_behalf else key_for(request, credentials)
    if raw is not None:
        return claim(request, raw, project_id, now)
    with get_database().session() as session:
        caller = check_role(get_caller(request, credentials, session, now), ANNOTATOR_ROLES)
        annotator = caller.name
        if body is not None and body.annotator is not None:
            if not caller.is_admin:
                raise Forbidden("only admin keys may claim on behalf of another annotator", field="annotator")
            annotator = body.annotator
        project = projects.get_active(session, caller, project_id)
        return annotator, project.instructions, service.claim(session, project, annotator, now)


def label_request(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> tuple[Label, bool]:
    """(label, created): the lane, or a unit of work; a new label asks for its project's aggregation."""
    raw = key_for(request, credentials)
    if raw is not None:
        stored, created = label(request, raw, assignment_id, body, now, idempotency_key)
        if created:
            quality.schedule_aggregate_now(stored.project_id)
        return stored, created
    with get_database().session() as session:
        caller = check_role(get_caller(request, credentials, session, now), ANNOTATOR_ROLES)
        assignment = service.get_assignment(session, caller, assignment_id)
        stored, created = service.label(session, assignment, body, now, idempotency_key)
        quality.schedule_aggregate(session, stored.project_id)
    return stored, created


def key_for(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    """The raw API key if this request can take the lane; None sends it the unit-of-work way."""
    if credentials is None or not credentials.credentials or get_settings().is_sqlite:
        return None
    raw = credentials.credentials
    bootstrap = request.app.state.admin_key
    if (bootstrap and raw == bootstrap) or not keys.well_formed(raw):
        return None  # the bootstrap admin has no key row; a malformed key gets its 401 there
    return raw


def _connect() -> Connection:
    return get_database().engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def _key_hash(raw: str) -> str:
    return keys.hash_key(raw, get_settings().secret_key.get_secret_value())


def _count_request(conn: Connection, key_hash: str) -> None:
    """The per-key rate limit, before the work (the key's id is looked up once per process)."""
    key_id = _key_ids.get(key_hash)
    if key_id is None:
        key_id = auth.key_id_for_hash(conn, key_hash)
        if key_id is None:
            return  # unknown: the function says 401
        if len(_key_ids) >= _KEY_IDS_KEPT:
            _key_ids.clear()
        _key_ids[key_hash] = key_id
    count_request(str(key_id))


def _check_caller(request: Request, found: Any, missing: str) -> None:
    """Raise what the other path raises for this caller outcome of real_queue_caller."""
    outcome = found.outcome
    if outcome in _AUTH_REFUSALS:
        with counting_auth_failures(request):
            raise Unauthorized(_AUTH_REFUSALS[outcome])
    if outcome == "forbidden_role":
        raise Forbidden(f"the {Role(found.caller_role).value} role may not do this")
    if outcome in ("no_project", "no_assignment"):
        raise NotFound(missing)


def claim(
    request: Request, raw: str, project_id: uuid.UUID, now: datetime
) -> tuple[str, str, service.Claimed | str]:
    """(annotator, the project's instructions, Claimed or a QueueReason) for the key's principal."""
    key_hash = _key_hash(raw)
    cap = get_settings().max_active_leases_per_annotator
    with _connect() as conn:
        _count_request(conn, key_hash)
        params = {
            "key_hash": key_hash,
            "project": project_id,
            "now": now,
            "cap": cap,
            "gold_draw": service.gold_draw(),
        }
        found = repository.claim_as(conn, params)
    _check_caller(request, found, f"no project {project_id}")
    result = service.claimed_or_reason(found, found.caller_name, cap, now)
    return found.caller_name, found.instructions, result


def label(
    request: Request,
    raw: str,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> tuple[Label, bool]:
    """(label, created) for the key's principal's assignment."""
    key_hash = _key_hash(raw)
    fingerprint = service.request_fingerprint(assignment_id, body)
    with _connect() as conn:
        _count_request(conn, key_hash)
        params = service.label_params(assignment_id, body, now, idempotency_key, fingerprint)
        params["key_hash"] = key_hash
        found = repository.label_as(conn, params)
    _check_caller(request, found, f"no assignment {assignment_id}")
    return service.label_or_refusal(found, assignment_id)
