"""Keys and principals: create (secret shown once), list, revoke, authenticate."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import keys
from app.auth.context import BOOTSTRAP_ADMIN, Caller
from app.auth.models import ApiKey, Principal, Role
from app.config import Environment, Settings
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
) -> CreatedKey:
    """A new key for the named principal (created if the name is new). The secret is returned only here."""
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    project_list = _valid_projects(session, projects) if projects is not None else None
    if principal is None:
        principal = Principal(name=name, role=role, projects=project_list)
        session.add(principal)
        session.flush()
        audit.record(
            session,
            caller,
            "principal.created",
            "principal",
            principal.id,
            {"name": name, "role": role.value, "projects": project_list},
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


def _active_admin_key_exists(session: Session, now: datetime) -> bool:
    return bool(
        session.scalar(
            select(
                exists()
                .where(ApiKey.principal_id == Principal.id, Principal.role == Role.ADMIN)
                .where(ApiKey.revoked_at.is_(None))
                .where((ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now))
            )
        )
    )


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
    found = session.execute(
        select(ApiKey, Principal)
        .join(Principal, Principal.id == ApiKey.principal_id)
        .where(ApiKey.key_hash == keys.hash_key(raw, settings.secret_key.get_secret_value()))
    ).first()
    if found is None:
        raise Unauthorized("unknown API key")
    row, principal = found
    if row.revoked_at is not None:
        raise Unauthorized("this API key was revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("this API key has expired")
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: one write a minute per key, not one per request.
        session.execute(
            update(ApiKey)
            .where(ApiKey.id == row.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return Caller(
        name=principal.name,
        role=Role(principal.role),
        principal_id=principal.id,
        key_id=row.id,
        projects=frozenset(uuid.UUID(p) for p in (principal.projects or [])),
    )
