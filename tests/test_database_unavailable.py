"""A database that is down or dropped a pooled connection: 503 problem+json with Retry-After, never 500."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY


def test_a_dropped_pooled_connection_costs_one_503_then_the_pool_reconnects(client: Any, db: Any) -> None:
    from app.db.session import get_database

    held = [get_database().engine.connect() for _ in range(4)]  # the app's pool: several live connections
    for conn in held:
        conn.exec_driver_sql("SELECT 1")
        conn.close()
    assert client.get("/v1/projects").status_code == 200
    # Cut every connection to this database (what a Postgres restart does to a pool), from outside the pool.
    with psycopg.connect(db.engine.url.set(drivername="postgresql").render_as_string(False)) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    try:
        answers = [client.get("/v1/projects") for _ in range(6)]
    finally:
        db.engine.dispose()  # the fixture's engine (not always the app's, after other tests) reconnects too
    codes = [a.status_code for a in answers]
    assert codes[0] == 503, codes  # no pre-ping: the first dead connection fails one request...
    assert codes[1:] == [200] * 5, codes  # ...and invalidates the whole pool: recovered, no restart
    failed = answers[0]
    assert failed.headers["content-type"].startswith("application/problem+json")
    assert failed.json()["code"] == "database_unavailable"
    assert failed.headers["Retry-After"] == "5"


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
