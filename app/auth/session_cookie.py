"""Browser sessions as a stateless signed cookie, and the CSRF token bound to it.

A signed-in browser holds ``real_session`` = ``<api key id>.<expiry, unix seconds>.<signature>``: an
HMAC-SHA256 under a key derived from REAL_SECRET_KEY, so no table is needed. The cookie proves only which key
signed in and until when; every request still checks that the key exists, is not revoked and has not expired
(app/auth/service.authenticate_key_id), so revoking the key ends its sessions at once.

CSRF: a state-changing request authenticated by the cookie must send ``X-CSRF-Token``, the HMAC of the
session cookie under another derived key. The page reads it from the ``real_csrf`` cookie (readable by
scripts, useless without the session cookie it is bound to) or from the sign-in answer. A request with a
bearer key carries no ambient credential and needs no token.

Pure: no database, no HTTP framework.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

from app.errors import Unauthorized

SESSION_COOKIE = "real_session"
CSRF_COOKIE = "real_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_COOKIE_CHARS = 200


def _derived(secret: str, purpose: bytes) -> bytes:
    """A key of its own per use, so a session signature can never be replayed as a key hash or token."""
    return hmac.new(secret.encode(), b"real-align/" + purpose, hashlib.sha256).digest()


def _mac(secret: str, purpose: bytes, message: str) -> str:
    digest = hmac.new(_derived(secret, purpose), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(secret: str, key_id: uuid.UUID, expires_at: datetime) -> str:
    """The session cookie value for a key, valid until expires_at."""
    body = f"{key_id.hex}.{int(expires_at.timestamp())}"
    return f"{body}.{_mac(secret, b'session/v1', body)}"


def verify(secret: str, value: str, now: datetime) -> uuid.UUID:
    """The key id a session cookie names; 401 when it is malformed, forged or past its expiry."""
    parts = value.split(".") if len(value) <= _MAX_COOKIE_CHARS else []
    if len(parts) != 3 or not parts[1].isdigit():
        raise Unauthorized("malformed session cookie; sign in again")
    key_hex, expires, signature = parts
    expected = _mac(secret, b"session/v1", f"{key_hex}.{expires}")
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise Unauthorized("invalid session cookie; sign in again")
    if int(expires) <= now.timestamp():
        raise Unauthorized("the session has expired; sign in again")
    try:
        return uuid.UUID(hex=key_hex)
    except ValueError as exc:
        raise Unauthorized("malformed session cookie; sign in again") from exc


def expires_at(value: str) -> datetime:
    """The expiry written in a (verified) session cookie."""
    return datetime.fromtimestamp(int(value.split(".")[1]), UTC)


def csrf_token(secret: str, session_value: str) -> str:
    """The CSRF token that goes with a session cookie."""
    return _mac(secret, b"csrf/v1", session_value)


def csrf_valid(secret: str, session_value: str, token: str | None) -> bool:
    """Whether a request's X-CSRF-Token matches its session cookie."""
    expected = csrf_token(secret, session_value)
    return token is not None and hmac.compare_digest(token.encode(), expected.encode())
