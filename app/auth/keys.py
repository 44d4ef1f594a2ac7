"""API key format: ``real_`` + 32 base62 characters + a 6-character base62 CRC32 checksum.

The fixed prefix and the checksum let secret scanners find leaked keys with few false positives (the design
GitHub uses for its tokens); the checksum also lets us refuse a mistyped key without a database lookup.
Only HMAC-SHA256(REAL_SECRET_KEY, key) is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib

PREFIX = "real_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 32
_CHECK_LEN = 6
KEY_LENGTH = len(PREFIX) + _BODY_LEN + _CHECK_LEN
DISPLAY_PREFIX_LENGTH = 12


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        digits.append(_ALPHABET[rem])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def generate() -> str:
    """A new random key."""
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))
    return PREFIX + body + _checksum(body)


def well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about whether the key exists)."""
    if len(key) != KEY_LENGTH or not key.startswith(PREFIX):
        return False
    body, check = key[len(PREFIX) : len(PREFIX) + _BODY_LEN], key[-_CHECK_LEN:]
    if any(c not in _ALPHABET for c in body):
        return False
    return hmac.compare_digest(check, _checksum(body))


def hash_key(key: str, secret: str) -> str:
    """The stored form of a key."""
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()


def display_prefix(key: str) -> str:
    """The part of a key shown in lists."""
    return key[:DISPLAY_PREFIX_LENGTH]
