"""End to end, on real parts: Postgres + Redis + a Celery worker process, and the embedded default."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY, EXPORT_DIR, PG_URL, _reset_app_state
from tests.e2e.pipeline import run_pipeline
from tests.services import redis_ok, redis_url

pytestmark = [pytest.mark.integration, pytest.mark.embedding]


@pytest.fixture
def celery_worker(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    """A real `real-align worker` process on the test database, with Redis as the broker."""
    assert redis_ok(), f"Redis is needed for this test at {redis_url()}"
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    env = {
        **os.environ,
        "REAL_DATABASE_URL": PG_URL or "",
        "REAL_BROKER_URL": redis_url(),
        "REAL_EXPORT_DIR": str(EXPORT_DIR),
        "REAL_LOG_LEVEL": "INFO",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli",
            "worker",
            "--queues",
            "embeddings,default",
            "--concurrency",
            "1",
            "--name",
            f"test-{os.getpid()}@%h",
        ],
        env=env,
    )
    monkeypatch.setenv("REAL_BROKER_URL", redis_url())
    _reset_app_state()
    try:
        yield worker
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        _reset_app_state()


def test_pipeline_on_postgres_redis_and_a_celery_worker(celery_worker: Any, db: Any) -> None:
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    assert get_settings().broker_url == redis_url()
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        run_pipeline(client, db)
    assert celery_worker.poll() is None, "the worker process died"


def test_pipeline_on_the_embedded_default(sqlite_app: Any) -> None:
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    settings = get_settings()
    assert settings.is_sqlite
    assert settings.embedded_tasks
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        run_pipeline(client, sqlite_app)
