"""SQLite write transactions hold a flock on `<database>.lock` (app/db/session.py), released at commit or
rollback, never taken by read-only units of work, and given up (to SQLite's busy handler) after a timeout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import text


def driver(connection: Any) -> Any:
    return connection.connection.driver_connection


def test_a_write_transaction_holds_the_lock_until_commit(sqlite_app: Any) -> None:
    with sqlite_app.engine.connect() as first, sqlite_app.engine.connect() as second:
        waiting = driver(second)
        waiting.timeout_s = 0.05
        first.execute(text("UPDATE project SET name = name"))  # BEGIN IMMEDIATE, with the flock
        assert driver(first).locked
        assert Path(f"{sqlite_app.engine.url.database}.lock").exists()
        started = time.monotonic()
        waiting.take_write_lock()
        assert not waiting.locked  # gave up after its timeout; SQLite's busy handler would decide next
        assert time.monotonic() - started >= 0.05
        first.commit()
        assert not driver(first).locked
        waiting.take_write_lock()
        assert waiting.locked
        waiting.rollback()  # what the pool's reset on return does, too
        assert not waiting.locked


def test_a_rolled_back_transaction_releases_it(sqlite_app: Any) -> None:
    with sqlite_app.engine.connect() as first, sqlite_app.engine.connect() as second:
        first.execute(text("UPDATE project SET name = name"))
        first.rollback()
        second.execute(text("UPDATE project SET name = name"))
        assert driver(second).locked
        second.commit()


def test_a_read_only_unit_of_work_does_not_take_it(sqlite_app: Any) -> None:
    with sqlite_app.read_session() as reading:
        reading.execute(text("SELECT COUNT(*) FROM project")).scalar()
        assert not driver(reading.connection()).locked
        with sqlite_app.session() as writing:
            writing.execute(text("UPDATE project SET name = name"))
            assert driver(writing.connection()).locked
