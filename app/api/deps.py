"""Request dependencies: the unit of work, the caller, and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.api.clock import NowDep
from app.auth import service as auth
from app.auth.context import Caller
from app.auth.models import Role
from app.auth.ratelimit import get_limiter
from app.config import get_settings
from app.db.session import get_session
from app.errors import Forbidden, TooManyRequests, Unauthorized

# scope="function": the commit runs before the response is sent, so a 2xx means the write is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: SessionDep,
    now: NowDep,
) -> Caller:
    """The caller, from the bearer key; 401 when missing or invalid, 429 past the rate limits."""
    settings = get_settings()
    limiter = get_limiter(settings.rate_limit_backend_url)
    try:
        if credentials is None or not credentials.credentials:
            raise Unauthorized("send `Authorization: Bearer <API key>`")
        caller = auth.authenticate(
            session, settings, credentials.credentials, request.app.state.admin_key, now
        )
    except Unauthorized as exc:
        client = request.client.host if request.client else "unknown"
        retry = limiter.hit(f"authfail:{client}", settings.auth_failures_per_minute)
        if retry is not None:
            raise TooManyRequests(
                "too many failed authentications from this address", headers={"Retry-After": str(retry)}
            ) from exc
        exc.headers = {"WWW-Authenticate": "Bearer"}
        raise
    retry = limiter.hit(f"key:{caller.rate_key}", settings.rate_limit_per_minute)
    if retry is not None:
        raise TooManyRequests("rate limit for this API key exceeded", headers={"Retry-After": str(retry)})
    return caller


def require(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that admits only these roles (403 for the others)."""
    allowed = frozenset(roles)

    def dependency(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if caller.role not in allowed:
            raise Forbidden(f"the {caller.role.value} role may not do this")
        return caller

    return dependency


def require_reviewer(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    """Admins, data teams, and annotators with the reviewer flag (403 for other annotators)."""
    if not caller.may_review:
        raise Forbidden("only data teams and principals with the reviewer flag may review")
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(require(Role.ADMIN))]
DataTeamDep = Annotated[Caller, Depends(require(Role.ADMIN, Role.DATA_TEAM))]
AnnotatorDep = Annotated[Caller, Depends(require(Role.ADMIN, Role.ANNOTATOR))]
# The review queue and verdicts; project membership is checked by the project lookup, as everywhere.
ReviewerDep = Annotated[Caller, Depends(require_reviewer)]


def configured_admin_key() -> str | None:
    """The bootstrap admin key from the settings, if any."""
    key = get_settings().bootstrap_admin_key
    return key.get_secret_value() if key else None
