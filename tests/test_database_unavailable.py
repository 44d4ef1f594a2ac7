"""A database that is down or dropped a pooled connection: 503 problem+json with Retry-After, never 500."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY


def _drop_pooled_connections_then_ask(client: Any, db: Any, idle_s: float) -> list[Any]:
    """Six answers to GET /v1/projects after every connection to the database was cut while the pool idled.

    The app's pool holds several live connections first; they are cut from outside the pool (what a Postgres
    restart does to it), and the pool then sits idle `idle_s` before the requests.
    """
    from app.db.session import get_database

    held = [get_database().engine.connect() for _ in range(4)]
    for conn in held:
        conn.exec_driver_sql("SELECT 1")
    for conn in held:
        conn.close()
    assert client.get("/v1/projects").status_code == 200
    with psycopg.connect(db.engine.url.set(drivername="postgresql").render_as_string(False)) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    time.sleep(idle_s)  # not a timing assertion: only makes every pooled connection idle at least this long
    try:
        return [client.get("/v1/projects") for _ in range(6)]
    finally:
        db.engine.dispose()  # the fixture's engine (not the app's here) reconnects too


@pytest.fixture
def fresh_database(override_settings: Any) -> Any:
    """override_settings, and an app Database built from them (the fixtures' one is forgotten, then again)."""
    from app.db.session import reset_database

    def apply(**values: Any) -> None:
        override_settings(**values)
        reset_database()

    yield apply
    reset_database()


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"db_ping_after_idle_s": 0.1}, id="idle-longer-than-the-threshold"),
        pytest.param({"db_ping_after_idle_s": 0}, id="threshold-0-pings-always"),
        pytest.param({"db_pool_pre_ping": True, "db_ping_after_idle_s": -1}, id="pre-ping"),
    ],
)
def test_a_pooled_connection_dropped_while_idle_is_replaced_before_any_request_uses_it(
    client: Any, db: Any, fresh_database: Any, settings: dict[str, Any]
) -> None:
    fresh_database(**settings)
    codes = [a.status_code for a in _drop_pooled_connections_then_ask(client, db, idle_s=0.3)]
    assert codes == [200] * 6, codes  # the ping on checkout found the dead connections: no 503, no retry


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"db_ping_after_idle_s": 3600}, id="idle-shorter-than-the-threshold"),
        pytest.param({"db_ping_after_idle_s": -1}, id="never-pinged"),
    ],
)
def test_an_unpinged_dropped_pooled_connection_costs_one_503_then_the_pool_reconnects(
    client: Any, db: Any, fresh_database: Any, settings: dict[str, Any]
) -> None:
    fresh_database(**settings)
    answers = _drop_pooled_connections_then_ask(client, db, idle_s=0.3)
    codes = [a.status_code for a in answers]
    assert codes[0] == 503, codes  # not pinged (a connection used within the threshold): one request fails...
    assert codes[1:] == [200] * 5, codes  # ...and invalidates the whole pool: recovered, no restart
    failed = answers[0]
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert failed.json()["code"] == "database_unavailable"
    assert failed.headers["Retry-After"] == "5"


def test_sqlite_checkouts_are_never_pinged(sqlite_app: Any) -> None:
    # A SQLite connection is a file handle in this process: no server can drop it, so no checkout listener.
    assert not sqlite_app.engine.pool.dispatch.checkout
    assert not sqlite_app.engine.pool._pre_ping


def test_a_database_that_is_down_answers_503(override_settings: Any) -> None:
    from app.db.session import reset_database
    from app.main import create_app

    override_settings(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    reset_database()
    try:
        app = create_app(admin_key=ADMIN_KEY, start_runner=False)
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as api:
            answer = api.get("/v1/projects")
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "database_unavailable"
        assert answer.headers["Retry-After"] == "5"
    finally:
        reset_database()
