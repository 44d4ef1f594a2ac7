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


def _xdist_worker() -> int | None:
    """This process's pytest-xdist worker number (gw0 -> 0), or None when not run by xdist."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else None


def _per_worker_database(url: str, worker: int) -> str | None:
    """`<database>_gw<N>` beside the given one, created on first use (each xdist worker owns one).

    Its commits do not wait for the WAL to reach the disk (synchronous_commit off, a setting of that database
    only): a flush took 1 to 3 ms per commit here, and the suite commits tens of thousands of times. What a
    commit makes visible, and when, is unchanged; only a crash of the server could lose the last commits of
    a database that is rebuilt from scratch at the next run anyway.
    """
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"{parsed.database}_gw{worker}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                conn.execute(f'CREATE DATABASE "{name}"')
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    except Exception:
        return None
    return parsed.set(database=name).render_as_string(hide_password=False)


def find_postgres() -> str | None:
    """REAL_TEST_DATABASE_URL, else the local `test` database over TCP, else over the Unix socket.

    Under pytest-xdist each worker gets its own database beside that one (`test_gw0`, `test_gw1`, ...).
    """
    configured = os.environ.get("REAL_TEST_DATABASE_URL")
    candidates = (configured,) if configured else DEFAULT_PG_URLS
    found = next((url for url in candidates if _pg_ok(url)), None)
    worker = _xdist_worker()
    if found is None or worker is None:
        return found
    return _per_worker_database(found, worker)


def redis_url() -> str:
    """The Redis the tests use as a broker (database 15, to stay out of a dev's way; one per xdist worker)."""
    url = os.environ.get("REAL_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    worker = _xdist_worker()
    if not worker:
        return url
    base, _, number = url.rpartition("/")
    return f"{base}/{(int(number) - worker) % 16}" if number.isdigit() else url


def redis_ok() -> bool:
    """Whether that Redis answers PING."""
    import redis

    try:
        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=3).ping())
    except Exception:
        return False
