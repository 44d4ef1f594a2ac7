"""Webhook secrets and signatures (Stripe-style): `Real-Signature: t=<unix seconds>,v1=<hex>`.

v1 = HMAC-SHA256(key = the secret's UTF-8 bytes, message = "<t>." + the raw body). docs/exports.md shows
the receiver's side; ``verify`` here is the same check.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

SIGNATURE_HEADER = "Real-Signature"
DELIVERY_HEADER = "Real-Delivery"
EVENT_HEADER = "Real-Event"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


def derive_secret(secret_key: str, project_id: uuid.UUID, salt: str) -> str:
    """The project's signing secret; only the salt is stored (REAL_SECRET_KEY does the rest)."""
    message = f"real-align webhook secret v1|{project_id}|{salt}".encode()
    return SECRET_PREFIX + hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>.<body>" under the secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The Real-Signature header value."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance: float = DEFAULT_TOLERANCE_SECONDS
) -> bool:
    """True if the header signs this body under the secret and its timestamp is within the tolerance."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
