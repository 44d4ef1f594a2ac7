"""Where the test suite finds Postgres and Redis (shared by the preflight and conftest)."""

from __future__ import annotations

import os

DEFAULT_PG_URLS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://postgres@/test?host=/var/run/postgresql",
)
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
START_HINT = "docker compose up -d postgres redis"


def _pg_ok(url: str) -> bool:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def find_postgres() -> str | None:
    """REAL_TEST_DATABASE_URL, else the local `test` database over TCP, else over the Unix socket."""
    configured = os.environ.get("REAL_TEST_DATABASE_URL")
    candidates = (configured,) if configured else DEFAULT_PG_URLS
    return next((url for url in candidates if _pg_ok(url)), None)


def redis_url() -> str:
    """The Redis the pipeline test uses as a broker (database 15, to stay out of a dev's way)."""
    return os.environ.get("REAL_TEST_REDIS_URL", DEFAULT_REDIS_URL)


def redis_ok() -> bool:
    """Whether that Redis answers PING."""
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=3).ping())
    except Exception:
        return False
