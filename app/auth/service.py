"""Keys and principals: create (secret shown once), list, revoke, authenticate."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, exists, select, update
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate_rows
from app.audit import service as audit
from app.auth import keys
from app.auth.context import BOOTSTRAP_ADMIN, Caller
from app.auth.models import ApiKey, Principal, Role
from app.config import Environment, Settings
from app.db.types import UTCDateTime
from app.errors import Conflict, InvalidInput, NotFound, Unauthorized
from app.projects.models import Project

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass
class CreatedKey:
    key: str
    row: ApiKey
    principal: Principal


def _valid_projects(session: Session, project_ids: list[uuid.UUID]) -> list[str]:
    for index, project_id in enumerate(project_ids):
        if session.get(Project, project_id) is None:
            raise InvalidInput(f"no project {project_id}", field=f"projects[{index}]")
    return sorted({str(p) for p in project_ids})


def create_key(
    session: Session,
    settings: Settings,
    caller: Caller,
    *,
    role: Role,
    name: str,
    projects: list[uuid.UUID] | None,
    expires_at: datetime | None,
    reviewer: bool | None = None,
) -> CreatedKey:
    """A new key for the named principal (created if the name is new). The secret is returned only here."""
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    project_list = _valid_projects(session, projects) if projects is not None else None
    if principal is None:
        principal = Principal(name=name, role=role, projects=project_list, reviewer=bool(reviewer))
        session.add(principal)
        session.flush()
        audit.record(
            session,
            caller,
            "principal.created",
            "principal",
            principal.id,
            {"name": name, "role": role.value, "projects": project_list, "reviewer": bool(reviewer)},
        )
    else:
        if principal.role != role:
            raise Conflict(f"principal {name!r} exists with role {principal.role!r}", field="role")
        if project_list is not None and project_list != principal.projects:
            principal.projects = project_list
            audit.record(
                session,
                caller,
                "principal.projects_changed",
                "principal",
                principal.id,
                {"projects": project_list},
            )
        if reviewer is not None:
            _set_reviewer(session, caller, principal, reviewer)
    raw = keys.generate()
    row = ApiKey(
        principal_id=principal.id,
        prefix=keys.display_prefix(raw),
        key_hash=keys.hash_key(raw, settings.secret_key.get_secret_value()),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    audit.record(session, caller, "key.created", "api_key", row.id, row.details())
    return CreatedKey(key=raw, row=row, principal=principal)


def _set_reviewer(session: Session, caller: Caller, principal: Principal, reviewer: bool) -> None:
    if principal.reviewer != reviewer:
        principal.reviewer = reviewer
        audit.record(
            session, caller, "principal.reviewer_changed", "principal", principal.id, {"reviewer": reviewer}
        )


def update_principal(session: Session, caller: Caller, name: str, *, reviewer: bool | None) -> Principal:
    """Change a principal's flags (audited); its keys see the change on their next request."""
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None:
        raise NotFound(f"no principal {name!r}")
    if reviewer is not None:
        _set_reviewer(session, caller, principal, reviewer)
    session.flush()
    return principal


def revoke_key(session: Session, caller: Caller, key_id: uuid.UUID, now: datetime) -> ApiKey:
    """Revoke at once (the next request with it is refused). Revoking twice is harmless."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no key {key_id}")
    if row.revoked_at is None:
        row.revoked_at = now
        audit.record(session, caller, "key.revoked", "api_key", row.id, row.details())
        session.flush()
    return row


def list_keys(session: Session, *, limit: int, cursor: str | None) -> PageRows[Row[ApiKey, Principal]]:
    """A page of every key with its principal, oldest first."""
    query = select(ApiKey, Principal).join(Principal, Principal.id == ApiKey.principal_id)
    return paginate_rows(session, query, ApiKey.id, limit=limit, cursor=cursor)


# Built once: authentication runs on every request, and building a statement costs more than running it.
_ADMIN_KEY_EXISTS = select(
    exists()
    .where(ApiKey.principal_id == Principal.id, Principal.role == Role.ADMIN)
    .where(ApiKey.revoked_at.is_(None))
    .where((ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > bindparam("b_now", type_=UTCDateTime())))
)
_KEY_COLUMNS = select(
    ApiKey.id,
    ApiKey.revoked_at,
    ApiKey.expires_at,
    ApiKey.last_used_at,
    Principal.id,
    Principal.name,
    Principal.role,
    Principal.projects,
    Principal.reviewer,
    ApiKey.key_hash,
).join(Principal, Principal.id == ApiKey.principal_id)
_KEY_LOOKUP = _KEY_COLUMNS.where(ApiKey.key_hash == bindparam("b_hash"))
# A signed-in browser session names its key by id (app/auth/session_cookie.py); the same checks follow.
_KEY_BY_ID = _KEY_COLUMNS.where(ApiKey.id == bindparam("b_id"))


def principal_caller(session: Session, name: str) -> Caller | None:
    """The principal of this name as a caller (its role, grants and flags, no key), or None."""
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None:
        return None
    return Caller(
        name=principal.name,
        role=Role(principal.role),
        principal_id=principal.id,
        projects=frozenset(uuid.UUID(p) for p in (principal.projects or [])),
        reviewer=principal.reviewer,
    )


def _active_admin_key_exists(session: Session, now: datetime) -> bool:
    return bool(session.connection().execute(_ADMIN_KEY_EXISTS, {"b_now": now}).scalar())


def authenticate(
    session: Session, settings: Settings, raw: str, bootstrap_key: str | None, now: datetime
) -> Caller:
    """The caller behind a bearer key; 401 for a missing, malformed, unknown, revoked or expired key."""
    if bootstrap_key and hmac.compare_digest(raw.encode(), bootstrap_key.encode()):
        if settings.env is Environment.DEV or not _active_admin_key_exists(session, now):
            return BOOTSTRAP_ADMIN
        raise Unauthorized("the bootstrap admin key is disabled once an admin key exists")
    if not keys.well_formed(raw):
        raise Unauthorized("malformed API key")
    key_hash = keys.hash_key(raw, settings.secret_key.get_secret_value())
    found = session.connection().execute(_KEY_LOOKUP, {"b_hash": key_hash}).first()
    return _caller_of_key(session, found, now)


def authenticate_key_id(session: Session, key_id: uuid.UUID, now: datetime) -> Caller:
    """The caller behind a signed-in session's key; 401 once the key is unknown, revoked or expired."""
    found = session.connection().execute(_KEY_BY_ID, {"b_id": key_id}).first()
    return _caller_of_key(session, found, now)


def _caller_of_key(session: Session, found: Any, now: datetime) -> Caller:
    """The checks every way of presenting a key goes through: it exists, is not revoked, has not expired."""
    if found is None:
        raise Unauthorized("unknown API key")
    key_id, revoked_at, expires_at, last_used_at, principal_id, name, role, projects, reviewer, key_hash = (
        found
    )
    if revoked_at is not None:
        raise Unauthorized("this API key was revoked")
    if expires_at is not None and expires_at <= now:
        raise Unauthorized("this API key has expired")
    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: one write a minute per key, not one per request.
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Caller(
        name=name,
        role=Role(role),
        principal_id=principal_id,
        key_id=key_id,
        projects=frozenset(uuid.UUID(p) for p in (projects or [])),
        reviewer=reviewer,
        key_hash=key_hash,
    )
