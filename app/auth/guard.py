"""A request's credentials checked as plain values: who is calling, rate limits, role checks.

The auth dependency (app/api/deps.py) and the queue's hot path (app/queue/fastlane.py) both use these, so
both refuse alike; nothing here knows FastAPI.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth import service as auth
from app.auth.context import Caller
from app.auth.models import Role
from app.auth.ratelimit import get_limiter
from app.config import get_settings
from app.errors import Forbidden, TooManyRequests, Unauthorized


@dataclass(frozen=True)
class Credentials:
    """What a request presents: its bearer key (or None), the app's bootstrap admin key, and the client
    address failed authentications are counted against."""

    key: str | None
    bootstrap_key: str | None
    client: str


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
    """The caller, from the bearer key; 401 when missing or invalid, 429 past the rate limits."""
    with counting_auth_failures(credentials.client):
        if not credentials.key:
            raise Unauthorized("send `Authorization: Bearer <API key>`")
        caller = auth.authenticate(session, get_settings(), credentials.key, credentials.bootstrap_key, now)
    count_request(caller.rate_key)
    return caller


def check_role(caller: Caller, allowed: frozenset[Role]) -> Caller:
    """The caller, if its role is allowed (403 otherwise)."""
    if caller.role not in allowed:
        raise Forbidden(f"the {caller.role.value} role may not do this")
    return caller


ANNOTATOR_ROLES = frozenset({Role.ADMIN, Role.ANNOTATOR})
