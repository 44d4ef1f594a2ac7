"""At most once per key per window: Redis ``SET NX PX`` across processes, else a timestamp in this process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from app.config import Settings

log = logging.getLogger(__name__)

_PREFIX = "real-align:debounce:"
_local: dict[str, float] = {}
_lock = threading.Lock()
_redis: tuple[str, Any] | None = None


def redis_url(settings: Settings) -> str | None:
    """The Redis shared by the API processes and workers, if the deployment has one."""
    if settings.broker_url and settings.broker_url.startswith(("redis://", "rediss://")):
        return settings.broker_url
    return settings.rate_limit_redis_url


def _client(url: str) -> Any:
    global _redis
    with _lock:
        if _redis is None or _redis[0] != url:
            import redis

            _redis = (url, redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5))
        return _redis[1]


def _first_here(key: str, seconds: float, now: float) -> bool:
    with _lock:
        if now < _local.get(key, float("-inf")):
            return False
        if len(_local) > 10_000:
            for stale in [k for k, until in _local.items() if until <= now]:
                del _local[stale]
        _local[key] = now + seconds
        return True


def first_in_window(key: str, seconds: float, url: str | None) -> bool:
    """True for the first call with this key in a window of `seconds` (shared through Redis when given)."""
    if seconds <= 0:
        return True
    # The local check first: a busy process answers most calls without a round trip to Redis.
    if not _first_here(key, seconds, time.monotonic()):
        return False
    if url is None:
        return True
    try:
        return bool(_client(url).set(_PREFIX + key, b"1", nx=True, px=max(1, int(seconds * 1000))))
    except Exception:
        # Fail open: a Redis outage costs extra aggregations, never missing ones.
        log.exception("debounce.redis_unavailable")
        return True


def reset() -> None:
    """Forget the in-process windows (tests)."""
    with _lock:
        _local.clear()
