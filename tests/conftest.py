"""Test set-up: the real Postgres (migrated with Alembic), a clean slate per test, an API client.

Only tests that use the database fixtures need Postgres: the pure ones run without it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import DEFAULT_PG_URLS, START_HINT, find_postgres

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PG_URL = find_postgres()
EXPORT_DIR = Path(tempfile.mkdtemp(prefix="real-align-test-exports-"))
INDEX_DIR = Path(tempfile.mkdtemp(prefix="real-align-test-indexes-"))
ADMIN_KEY = "real_test_admin_key_0123456789abcdef"

os.environ["REAL_ENV"] = "test"
os.environ["REAL_EXPORT_DIR"] = str(EXPORT_DIR)
os.environ["REAL_INDEX_DIR"] = str(INDEX_DIR)
os.environ.pop("REAL_BROKER_URL", None)
os.environ.pop("REAL_BOOTSTRAP_ADMIN_KEY", None)
# With Postgres down, still the URL that was tried: a test that reaches the database without the fixtures
# then fails on it, instead of writing ./real-align.db or a developer's own REAL_DATABASE_URL.
os.environ["REAL_DATABASE_URL"] = PG_URL or os.environ.get("REAL_TEST_DATABASE_URL") or DEFAULT_PG_URLS[0]


def _no_postgres_message() -> str:
    from sqlalchemy.engine import make_url

    configured = os.environ.get("REAL_TEST_DATABASE_URL")
    where = (
        f"REAL_TEST_DATABASE_URL={make_url(configured).render_as_string(hide_password=True)}"
        if configured
        else "the local `test` database (127.0.0.1:5432 or the Unix socket)"
    )
    return f"this test needs Postgres and none answers at {where}; start it with: {START_HINT}"


def _reset_app_state() -> None:
    from app import background
    from app.auth.ratelimit import reset_limiter
    from app.config import get_settings
    from app.db.session import reset_database

    background.get_runner().stop()
    background._sender = None
    get_settings.cache_clear()
    reset_database()
    reset_limiter()


@pytest.fixture(scope="session")
def database() -> Iterator[Any]:
    """The Postgres test database at the newest migration, built from scratch once per run.

    Tests that use no database fixture run without Postgres; the ones that need it fail here, never skip:
    a run that skipped its database tests would pass while testing nothing.
    """
    if PG_URL is None:
        pytest.fail(_no_postgres_message(), pytrace=False)
    from sqlalchemy import text

    from app import migrate
    from app.db import models  # noqa: F401
    from app.db.session import get_database

    _reset_app_state()
    db = get_database()
    with db.engine.begin() as conn:
        # The whole schema: tables, and the SQL functions of the queue (which depend on table types).
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(PG_URL)
    yield db
    _reset_app_state()


def truncate_all(db: Any) -> None:
    """Empty every table (tests that cross threads or processes commit for real).

    On Postgres only the tables that hold rows are emptied, with DELETE: a TRUNCATE of every table took
    0.4 s per test even when they were empty (each relation's files are replaced and its buffers scanned),
    a quarter of the suite's time. The tables are locked first, so rows that a transaction still open
    elsewhere is writing are waited for and deleted too, as TRUNCATE would have.
    """
    from sqlalchemy import text

    from app.db.base import Base

    tables = Base.metadata.sorted_tables
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            names = [t.name for t in tables]
            conn.execute(text(f"LOCK TABLE {', '.join(names)} IN EXCLUSIVE MODE"))
            probe = " UNION ALL ".join(f"SELECT '{name}' WHERE EXISTS (SELECT FROM {name})" for name in names)
            with_rows = set(conn.scalars(text(probe)))
        else:
            with_rows = {t.name for t in tables}
        # Children before parents: every foreign key's rows are gone before the rows they point at.
        for table in reversed(tables):
            if table.name in with_rows:
                conn.execute(table.delete())


@pytest.fixture
def db(database: Any) -> Iterator[Any]:
    """The database the app uses now (the same Postgres), emptied after the test.

    Not always the session fixture's object: a test that resets the app state (the embedded default,
    a subprocess export) makes get_database() build a new one, and engine events or pools a test
    inspects must be the app's.
    """
    from app import background
    from app.auth.ratelimit import reset_limiter
    from app.db.session import get_database

    current = get_database()
    yield current
    background.get_runner().stop()
    truncate_all(current)
    reset_limiter()


@pytest.fixture
def session(db: Any) -> Iterator[Any]:
    """A session for arranging and checking rows (commits for real; tables are emptied after)."""
    with db.session() as s:
        yield s


@pytest.fixture
def recorded_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Sent tasks are recorded instead of run (for tests that must not embed)."""
    from app import background

    sent: list[tuple[str, dict[str, Any]]] = []
    # The outbox row's id (app/outbox/service.py) is left out: tests compare the task's own arguments.
    monkeypatch.setattr(
        background,
        "dispatch",
        lambda name, kwargs: sent.append((name, {k: v for k, v in kwargs.items() if k != "_outbox"})),
    )
    return sent


@pytest.fixture
def client(db: Any) -> Iterator[Any]:
    """An API client with the admin key; tasks are not started by the app itself."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app(admin_key=ADMIN_KEY, start_runner=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


@pytest.fixture
def sqlite_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The embedded default: a SQLite file, migrated, with tasks in-process."""
    from app import migrate
    from app.db.session import get_database

    url = f"sqlite:///{tmp_path / 'real-align.db'}"
    monkeypatch.setenv("REAL_DATABASE_URL", url)
    monkeypatch.delenv("REAL_BROKER_URL", raising=False)
    _reset_app_state()
    migrate.upgrade(url)
    yield get_database()
    _reset_app_state()


@pytest.fixture
def override_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set REAL_* settings for one test: override_settings(rate_limit_per_minute=3)."""
    from app.auth.ratelimit import reset_limiter
    from app.config import get_settings

    def apply(**values: Any) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"REAL_{name.upper()}", str(value))
        get_settings.cache_clear()
        reset_limiter()

    yield apply
    get_settings.cache_clear()
    reset_limiter()
