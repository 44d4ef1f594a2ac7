"""API keys (admin only) and who-am-I."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.clock import NowDep
from app.api.deps import AdminDep, CallerDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.auth import service
from app.auth.models import ApiKey, Principal, Role
from app.auth.schemas import (
    KeyCreate,
    KeyCreated,
    KeyRead,
    MeRead,
    MyProjectRead,
    PrincipalRead,
    PrincipalUpdate,
)
from app.config import get_settings
from app.errors import InvalidInput
from app.projects import service as projects
from app.schemas import NoNulStr

router = APIRouter(tags=["keys"])


def _principal(row: Principal) -> PrincipalRead:
    return PrincipalRead(
        id=row.id,
        name=row.name,
        role=Role(row.role),
        projects=[uuid.UUID(p) for p in row.projects or []],
        reviewer=row.reviewer,
    )


def _key(row: ApiKey, principal: Principal) -> KeyRead:
    return KeyRead(
        id=row.id,
        prefix=row.prefix,
        principal=_principal(principal),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated, responses=problems(409))
def create_key(body: KeyCreate, session: SessionDep, caller: AdminDep, now: NowDep) -> KeyCreated:
    """Create a key (and its principal, if the name is new). The secret is in this response only."""
    if body.expires_at is not None and body.expires_at <= now:
        raise InvalidInput("expires_at is in the past", field="expires_at")
    created = service.create_key(
        session,
        get_settings(),
        caller,
        role=body.role,
        name=body.name,
        projects=body.projects,
        expires_at=body.expires_at,
        reviewer=body.reviewer,
    )
    return KeyCreated(**_key(created.row, created.principal).model_dump(), key=created.key)


@router.get("/keys", response_model=Page[KeyRead], responses=problems())
def list_keys(
    session: SessionDep, _caller: AdminDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[KeyRead]:
    """Every key: prefix, principal, role, projects, created / last used / expires / revoked."""
    return service.list_keys(session, limit=limit, cursor=cursor).page(lambda row: _key(*row))


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def revoke_key(key_id: uuid.UUID, session: SessionDep, caller: AdminDep, now: NowDep) -> Response:
    """Revoke a key at once."""
    service.revoke_key(session, caller, key_id, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/principals/{name}", response_model=PrincipalRead, responses=problems(404))
def update_principal(
    name: Annotated[NoNulStr, Path(max_length=200)],
    body: PrincipalUpdate,
    session: SessionDep,
    caller: AdminDep,
) -> PrincipalRead:
    """Change a principal's reviewer flag (audited); its keys see the change on their next request."""
    return _principal(service.update_principal(session, caller, name, reviewer=body.reviewer))


@router.get("/me", response_model=MeRead, responses=problems())
def me(caller: CallerDep) -> MeRead:
    """Who the key belongs to: name, role, projects, reviewer flag."""
    return MeRead(
        name=caller.name,
        role=caller.role,
        projects=sorted(caller.projects, key=str),
        key_id=caller.key_id,
        reviewer=caller.reviewer,
    )


@router.get("/me/projects", response_model=Page[MyProjectRead], responses=problems())
def my_projects(
    session: SessionDep, caller: CallerDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[MyProjectRead]:
    """The projects the caller may work on now (not archived), oldest first: what the annotator page lists."""
    return projects.list_workable(session, caller, limit=limit, cursor=cursor).page(
        MyProjectRead.model_validate
    )
