"""Through a real Celery worker: a task sent by a request logs with that request's id (message headers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXPORT_DIR, PG_URL, _reset_app_state
from tests.factories import make_pairs, make_project
from tests.services import redis_ok, redis_url


@pytest.mark.integration
def test_a_worker_task_line_carries_the_request_id(
    client: Any, session: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert redis_ok(), f"Redis is needed for this test at {redis_url()}"
    import redis

    redis.Redis.from_url(redis_url()).flushdb()
    project = make_project(session)
    make_pairs(session, project, 2)
    session.commit()
    log_file = tmp_path / "worker.log"
    env = {
        **os.environ,
        "REAL_DATABASE_URL": PG_URL or "",
        "REAL_BROKER_URL": redis_url(),
        "REAL_EXPORT_DIR": str(EXPORT_DIR),
        "REAL_LOG_LEVEL": "INFO",
        "REAL_LOG_JSON": "true",
    }
    argv = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "--queues",
        "default",
        "--name",
        f"log-{os.getpid()}@%h",
    ]
    with log_file.open("w") as out:
        worker = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    monkeypatch.setenv("REAL_BROKER_URL", redis_url())
    _reset_app_state()
    try:
        created = client.post(
            f"/v1/projects/{project.id}/exports", json={}, headers={"X-Request-ID": "req-celery"}
        )
        assert created.status_code == 202, created.text
        deadline, finished = time.monotonic() + 90, []
        while not finished and time.monotonic() < deadline:
            time.sleep(0.5)
            lines = [json.loads(x) for x in log_file.read_text().splitlines() if x.startswith("{")]
            finished = [x for x in lines if x.get("event") == "exports.finished"]
        assert finished, log_file.read_text()[-3000:]
        (line,) = finished
        assert line["request_id"] == "req-celery"
        assert line["task"] == "exports.run_export"
        assert line["task_id"]
        assert line["project_id"] == str(project.id)
        assert line["export_id"] == created.json()["id"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        _reset_app_state()
