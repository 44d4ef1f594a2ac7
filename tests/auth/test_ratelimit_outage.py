"""With Redis down, rate limits go on in this process's counters (never switched off), and the outage is
logged once when it starts and once when it ends, not one traceback per request."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis

from app.auth import ratelimit
from app.auth.ratelimit import RedisRateLimiter
from tests.live_server import free_port
from tests.services import redis_url


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == ratelimit.__name__]


def test_limits_hold_while_redis_is_down_and_the_outage_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisRateLimiter(closed_port_url())
    with caplog.at_level(logging.INFO, logger=ratelimit.__name__):
        results = [limiter.hit("key:k", 3) for _ in range(50)]
    assert results[:3] == [None, None, None]
    assert all(isinstance(r, int) and r >= 1 for r in results[3:])
    records = outage_records(caplog)
    assert [r.getMessage() for r in records] == ["ratelimit.redis_unavailable"]
    assert records[0].exc_info is None  # one line, no traceback


@pytest.mark.integration
def test_the_end_of_the_outage_is_logged_once_and_redis_counts_again(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis.Redis.from_url(redis_url()).flushdb()
    limiter = RedisRateLimiter(redis_url())
    healthy = limiter._redis
    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 0.0)  # ask Redis again on every hit
    with caplog.at_level(logging.INFO, logger=ratelimit.__name__):
        limiter._redis = redis.Redis.from_url(closed_port_url(), socket_connect_timeout=0.5)
        assert [limiter.hit("key:k", 2) for _ in range(5)][:2] == [None, None]
        limiter._redis = healthy  # Redis is back
        assert [limiter.hit("key:k", 2) for _ in range(5)][:2] == [None, None]
    messages = [r.getMessage() for r in outage_records(caplog)]
    assert messages == ["ratelimit.redis_unavailable", "ratelimit.redis_recovered"]
    # The counts after the outage are Redis's: another process's limiter sees them.
    assert RedisRateLimiter(redis_url()).hit("key:k", 2) is not None


def test_the_api_limits_with_redis_down(client: Any, override_settings: Any) -> None:
    override_settings(rate_limit_redis_url=closed_port_url(), rate_limit_per_minute=3)
    assert [client.get("/v1/me").status_code for _ in range(5)] == [200, 200, 200, 429, 429]
