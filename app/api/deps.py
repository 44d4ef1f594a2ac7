"""Request dependencies: the unit of work and the caller (principal)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.session import get_session
from app.errors import Forbidden, Unauthorized

# scope="function": the commit runs before the response is sent, so a 2xx means the write is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")

ADMIN_NAME = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling. Until key management lands, the only key is the bootstrap admin key."""

    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the bearer key; 401 when missing or wrong."""
    if credentials is None or not credentials.credentials:
        raise Unauthorized("send `Authorization: Bearer <API key>`", headers={"WWW-Authenticate": "Bearer"})
    expected = request.app.state.admin_key
    if not expected or not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return Principal(name=ADMIN_NAME, role="admin")


def require_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """The caller, who must be an admin."""
    if not principal.is_admin:
        raise Forbidden("admin role required")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def configured_admin_key() -> str | None:
    """The bootstrap admin key from the settings, if any."""
    key = get_settings().bootstrap_admin_key
    return key.get_secret_value() if key else None
