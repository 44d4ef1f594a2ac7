"""Fixed-window rate limits: Redis counters in production (shared by all API processes), else in-memory."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        """Count one event; None if within the limit, else the seconds until the window resets."""


class MemoryRateLimiter:
    """Counters in this process (the embedded default runs one process)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        now = time.time()
        window = int(now // window_seconds)
        with self._lock:
            if len(self._counts) > 100_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= window}
            count = self._counts.get((key, window), 0) + 1
            self._counts[(key, window)] = count
        if count > limit:
            return max(1, int((window + 1) * window_seconds - now) + 1)
        return None


# While Redis is down, ask it again at most this often (each try may cost its connect timeout).
REDIS_RETRY_SECONDS = 5.0


class RedisRateLimiter:
    """Counters in Redis, so every API process and machine shares one limit per key.

    While Redis is unreachable the limits go on in this process's counters (MemoryRateLimiter): per
    process rather than shared, but never switched off. The outage is logged once when it starts and once
    when it ends; meanwhile Redis is asked again every REDIS_RETRY_SECONDS, not on every request.
    """

    def __init__(self, url: str) -> None:
        import redis

        self._redis: Any = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._fallback = MemoryRateLimiter()
        self._down_until: float | None = None  # monotonic time of the next try while Redis is down
        self._state_lock = threading.Lock()

    def hit(self, key: str, limit: int, window_seconds: int = 60) -> int | None:
        down_until = self._down_until
        if down_until is not None and time.monotonic() < down_until:
            return self._fallback.hit(key, limit, window_seconds)
        now = time.time()
        window = int(now // window_seconds)
        name = f"real-align:rl:{key}:{window}"
        try:
            pipe = self._redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, window_seconds * 2)
            count = int(pipe.execute()[0])
        except Exception as exc:
            self._went_down(exc)
            return self._fallback.hit(key, limit, window_seconds)
        if down_until is not None:
            self._came_back()
        if count > limit:
            return max(1, int((window + 1) * window_seconds - now) + 1)
        return None

    def _went_down(self, exc: Exception) -> None:
        with self._state_lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + REDIS_RETRY_SECONDS
        if first:
            log.warning(
                "ratelimit.redis_unavailable",
                extra={"error": f"{type(exc).__name__}: {exc}", "fallback": "per-process counters"},
            )

    def _came_back(self) -> None:
        with self._state_lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            log.warning("ratelimit.redis_recovered")


_limiter: RateLimiter | None = None
_limiter_url: str | None = None
_lock = threading.Lock()


def get_limiter(redis_url: str | None) -> RateLimiter:
    """The process's limiter for the configured backend."""
    global _limiter, _limiter_url
    with _lock:
        if _limiter is None or _limiter_url != redis_url:
            _limiter = RedisRateLimiter(redis_url) if redis_url else MemoryRateLimiter()
            _limiter_url = redis_url
        return _limiter


def reset_limiter() -> None:
    """Forget counters (tests)."""
    global _limiter
    with _lock:
        _limiter = None
