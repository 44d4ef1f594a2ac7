"""Engine and units of work: commit on success, roll back on error, sends only after commit."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from app.config import Settings, get_settings
from app.db import after_commit

try:
    import fcntl
except ImportError:  # Windows has no fcntl: there SQLite's own busy handler alone serialises writers
    fcntl = None  # type: ignore[assignment]

READ_ONLY = "real_read_only"  # execution option of Database.read_session's connections


class Database:
    """One engine and session factory for a process and a database URL."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = build_engine(settings)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        after_commit.install(self.session_factory, _dispatch)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A unit of work that only reads, rolled back at the end; on SQLite it takes no write lock."""
        session = self.session_factory(bind=self.engine.execution_options(**{READ_ONLY: True}))
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def dispose(self) -> None:
        """Close pooled connections (at shutdown, and after a fork)."""
        self.engine.dispose()


class _WriteLockedSQLiteConnection(sqlite3.Connection):
    """A SQLite connection whose write transactions also hold an exclusive flock on `<database>.lock`.

    SQLite's busy handler waits for the write lock by sleeping, up to 100 ms a time, so with two server
    processes a claim often slept long after the lock was free (claim p99 1.5 s at 50 annotators).
    Waiting on the flock instead, in steps of at most 0.2 ms, hands the lock over almost at once
    (bench/queue.py at 50 annotators: two processes 206-259 round trips/s, one process 165-185). Taken
    before BEGIN IMMEDIATE, dropped after COMMIT or ROLLBACK (and on close). A writer that cannot get it
    within the busy timeout goes on without it and SQLite's own busy handler decides, as before, so a unit
    of work that waits on another one of its own thread fails with "database is locked" instead of hanging.
    """

    lock_fd: int | None = None
    locked = False
    timeout_s = 30.0

    def take_write_lock(self) -> None:
        if self.lock_fd is None or self.locked or fcntl is None:
            return
        deadline = time.monotonic() + self.timeout_s
        pause = 0.00002
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(pause)
                pause = min(pause * 2, 0.0002)
            else:
                self.locked = True
                return

    def _drop_write_lock(self) -> None:
        if self.lock_fd is not None and self.locked and fcntl is not None:
            fcntl.flock(self.lock_fd, fcntl.LOCK_UN)
            self.locked = False

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._drop_write_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._drop_write_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._drop_write_lock()
            if self.lock_fd is not None:
                os.close(self.lock_fd)
                self.lock_fd = None


def build_engine(settings: Settings) -> Engine:
    """An engine for the configured URL, with SQLite set up for concurrent use."""
    url = settings.database_url
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
                "factory": _WriteLockedSQLiteConnection,
            },
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        _configure_sqlite(engine, settings)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql") and settings.db_statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    idle_s = settings.db_ping_after_idle_s
    pre_ping = settings.db_pool_pre_ping or idle_s == 0  # a ping on every checkout is SQLAlchemy's own
    engine = create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=pre_ping,
        pool_recycle=settings.db_pool_recycle_seconds,
        connect_args=connect_args,
    )
    if not pre_ping and idle_s is not None and idle_s > 0:
        _ping_after_idle(engine, idle_s)
    return engine


_CHECKED_IN_AT = "real_checked_in_at"  # key in a pooled connection's info: time.monotonic() of its checkin


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """Ping a pooled connection on checkout when it sat in the pool longer than `idle_s` seconds.

    SQLAlchemy's "custom pessimistic disconnect handling": a failed ping raises InvalidatePoolError, so the
    pool replaces this connection and every other one opened before now (after a restart all of them are
    dead, including those idle too briefly to be pinged), and the checkout goes on with a new connection. A
    connection checked back out within `idle_s` (every one of a busy process) costs two clock reads and no
    round trip; a fresh connection (its info is cleared on connect) is not pinged either. The ping is the
    dialect's (on psycopg one `SELECT 1` outside a transaction), as pool_pre_ping sends.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is not None:  # None: invalidated, nothing to time
            record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at <= idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            raise InvalidatePoolError(f"ping after {idle_s} s idle failed: {error}") from error


def _configure_sqlite(engine: Engine, settings: Settings) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so BEGIN IMMEDIATE below is what runs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        database = engine.url.database
        if database and database != ":memory:" and isinstance(dbapi_connection, _WriteLockedSQLiteConnection):
            dbapi_connection.lock_fd = os.open(f"{database}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            dbapi_connection.timeout_s = settings.sqlite_busy_timeout_ms / 1000

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two claimers queue on the busy timeout instead of both
        # reading the same free slot and failing on upgrade (SQLite has no SELECT ... FOR UPDATE). A read-only
        # unit of work begins deferred: in WAL mode it reads a snapshot without blocking the writer.
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        dbapi_connection = connection.connection.driver_connection
        if isinstance(dbapi_connection, _WriteLockedSQLiteConnection):
            dbapi_connection.take_write_lock()
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _dispatch(task_name: str, kwargs: dict[str, Any]) -> bool | None:
    # Looked up at call time so the task backend (Celery or the embedded runner) is chosen per send.
    from app import background

    return background.dispatch(task_name, kwargs)


_lock = threading.Lock()
_database: Database | None = None


def get_database() -> Database:
    """The process-wide Database for the current settings."""
    global _database
    with _lock:
        if _database is None:
            _database = Database(get_settings())
        return _database


def reset_database() -> None:
    """Forget the process-wide Database (tests and forks); the next call builds a new one."""
    global _database
    with _lock:
        if _database is not None:
            _database.dispose()
        _database = None


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one unit of work per request."""
    with get_database().session() as session:
        yield session
