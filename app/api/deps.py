"""Request dependencies: the unit of work, the caller, and role checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
    with counting_auth_failures(request):
        if credentials is None or not credentials.credentials:
            raise Unauthorized("send `Authorization: Bearer <API key>`")
        caller = auth.authenticate(
            session, settings, credentials.credentials, request.app.state.admin_key, now
        )
    count_request(caller.rate_key)
    return caller


@contextmanager
def counting_auth_failures(request: Request) -> Iterator[None]:
    """Count an Unauthorized raised inside against the client address (429 past the limit)."""
    try:
        yield
    except Unauthorized as exc:
        settings = get_settings()
        client = request.client.host if request.client else "unknown"
        retry = get_limiter(settings.rate_limit_backend_url).hit(
            f"authfail:{client}", settings.auth_failures_per_minute
        )
        if retry is not None:
            raise TooManyRequests(
                "too many failed authentications from this address", headers={"Retry-After": str(retry)}
            ) from exc
        exc.headers = {"WWW-Authenticate": "Bearer"}
        raise


def count_request(rate_key: str) -> None:
    """Count one request against an API key's rate limit; 429 past it."""
    settings = get_settings()
    retry = get_limiter(settings.rate_limit_backend_url).hit(
        f"key:{rate_key}", settings.rate_limit_per_minute
    )
    if retry is not None:
        raise TooManyRequests("rate limit for this API key exceeded", headers={"Retry-After": str(retry)})


def check_role(caller: Caller, allowed: frozenset[Role]) -> Caller:
    """The caller, if its role is allowed (403 otherwise)."""
    if caller.role not in allowed:
        raise Forbidden(f"the {caller.role.value} role may not do this")
    return caller


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
ANNOTATOR_ROLES = frozenset({Role.ADMIN, Role.ANNOTATOR})
AdminDep = Annotated[Caller, Depends(require(Role.ADMIN))]
DataTeamDep = Annotated[Caller, Depends(require(Role.ADMIN, Role.DATA_TEAM))]
AnnotatorDep = Annotated[Caller, Depends(require(*ANNOTATOR_ROLES))]
# The review queue and verdicts; project membership is checked by the project lookup, as everywhere.
ReviewerDep = Annotated[Caller, Depends(require_reviewer)]


def configured_admin_key() -> str | None:
    """The bootstrap admin key from the settings, if any."""
    key = get_settings().bootstrap_admin_key
    return key.get_secret_value() if key else None
