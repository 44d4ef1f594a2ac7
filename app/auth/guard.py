"""A request's credentials checked as plain values: who is calling, rate limits, role checks.

The auth dependency (app/api/deps.py) and the queue's hot path (app/queue/fastlane.py) both use these, so
both refuse alike; nothing here knows FastAPI. A request proves who it is with a bearer key or, from the
browser pages, with the signed session cookie (app/auth/session_cookie.py) plus its CSRF token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth import service as auth
from app.auth import session_cookie
from app.auth.context import Caller
from app.auth.models import Role
from app.auth.ratelimit import get_limiter
from app.config import get_settings
from app.errors import CsrfFailed, Forbidden, TooManyRequests, Unauthorized


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its bearer key (or None), the app's bootstrap admin key, and the client
    address failed authentications are counted against; and, used only without a bearer key, its session
    cookie, its X-CSRF-Token header, and whether its method changes state (and so needs the token)."""

    key: str | None
    bootstrap_key: str | None
    client: str
    session: str | None = None
    csrf_token: str | None = None
    changes_state: bool = False


@contextmanager
def counting_auth_failures(client: str) -> Iterator[None]:
    """Count an Unauthorized raised inside against the client address (429 past the limit)."""
    try:
        yield
    except Unauthorized as exc:
        settings = get_settings()
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


def authenticate(session: Session, credentials: Credentials, now: datetime) -> Caller:
    """The caller, from the bearer key or else the session cookie; 401 when missing or invalid, 403 for a
    cookie without its CSRF token on a state-changing request, 429 past the rate limits."""
    settings = get_settings()
    with counting_auth_failures(credentials.client):
        if credentials.key:
            caller = auth.authenticate(session, settings, credentials.key, credentials.bootstrap_key, now)
        elif credentials.session:
            caller = _from_session(session, credentials, now)
        else:
            raise Unauthorized("send `Authorization: Bearer <API key>` (or sign in at /sign-in)")
    count_request(caller.rate_key)
    return caller


def _from_session(session: Session, credentials: Credentials, now: datetime) -> Caller:
    assert credentials.session is not None
    secret = get_settings().secret_key.get_secret_value()
    key_id = session_cookie.verify(secret, credentials.session, now)
    if credentials.changes_state and not session_cookie.csrf_valid(
        secret, credentials.session, credentials.csrf_token
    ):
        raise CsrfFailed(f"send the {session_cookie.CSRF_HEADER} header of this session")
    return auth.authenticate_key_id(session, key_id, now)


def check_role(caller: Caller, allowed: frozenset[Role]) -> Caller:
    """The caller, if its role is allowed (403 otherwise)."""
    if caller.role not in allowed:
        raise Forbidden(f"the {caller.role.value} role may not do this")
    return caller


ANNOTATOR_ROLES = frozenset({Role.ADMIN, Role.ANNOTATOR})
