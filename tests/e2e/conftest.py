"""A real Celery worker process for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import EXPORT_DIR, PG_URL, _reset_app_state
from tests.services import redis_ok, redis_url

# Off for every worker these tests start: a lost task must show up as lost work, not be mended by the
# reconciler minutes later (no beat runs here either, so this only documents the intent).
RECONCILE_OFF = {"REAL_RECONCILE_AFTER_SECONDS": "86400"}


@pytest.fixture
def celery_worker(db: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[bytes]]:
    """A real `real-align worker` process on the test database, with Redis as the broker."""
    assert redis_ok(), f"Redis is needed for this test at {redis_url()}"
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    env = {
        **os.environ,
        **RECONCILE_OFF,
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
    for name, value in RECONCILE_OFF.items():
        monkeypatch.setenv(name, value)
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
