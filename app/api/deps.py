"""Request dependencies: the unit of work, the caller, and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.clock import NowDep
from app.auth import guard, session_cookie
from app.auth.context import Caller
from app.auth.guard import ANNOTATOR_ROLES, Credentials, check_role
from app.auth.models import Role
from app.config import get_settings
from app.db.session import get_session
from app.errors import Forbidden

# scope="function": the commit runs before the response is sent, so a 2xx means the write is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def credentials_of(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Credentials:
    """The request's credentials as plain values: every route, the queue's one-statement lane included,
    reads the bearer key and the browser's session cookie (with its CSRF header) here."""
    return Credentials(
        key=credentials.credentials if credentials is not None else None,
        bootstrap_key=request.app.state.admin_key,
        client=request.client.host if request.client else "unknown",
        session=request.cookies.get(session_cookie.SESSION_COOKIE),
        csrf_token=request.headers.get(session_cookie.CSRF_HEADER),
        changes_state=request.method not in session_cookie.SAFE_METHODS,
    )


def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionDep,
    now: NowDep,
) -> Caller:
    """The caller, from the bearer key; 401 when missing or invalid, 429 past the rate limits."""
    return guard.authenticate(session, credentials_of(request, credentials), now)


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only these roles (403 for the others)."""
    allowed = frozenset(roles)

    def dependency(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        return check_role(caller, allowed)

    return dependency


def require_reviewer(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """Admins, data teams, and annotators with the reviewer flag (403 for other annotators)."""
    if not caller.may_review:
        raise Forbidden("only data teams and principals with the reviewer flag may review")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
AdminDep = Annotated[Caller, Depends(require(Role.ADMIN))]
DataTeamDep = Annotated[Caller, Depends(require(Role.ADMIN, Role.DATA_TEAM))]
AnnotatorDep = Annotated[Caller, Depends(require(*ANNOTATOR_ROLES))]
# The review queue and verdicts; project membership is checked by the project lookup, as everywhere.
ReviewerDep = Annotated[Caller, Depends(require_reviewer)]


def configured_admin_key() -> str | None:
    """The bootstrap admin key from the settings, if any."""
    key = get_settings().bootstrap_admin_key
    return key.get_secret_value() if key else None
