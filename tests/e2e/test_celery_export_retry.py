"""On a real Celery worker: an export whose storage fails (an OSError, transient for exports) is put back to
queued and retried by Celery with the task's own policy, and succeeds once the storage is back."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from app.exports.models import ExportRun, ExportStatus
from tests.conftest import ADMIN_KEY, EXPORT_DIR
from tests.exports.helpers import at, label
from tests.factories import make_pairs, make_project

pytestmark = [pytest.mark.integration]


def test_a_storage_error_is_retried_by_the_worker_and_the_export_succeeds(
    celery_worker: Any, db: Any
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    with db.session() as s:
        project = make_project(s)
        for n, pair in enumerate(make_pairs(s, project, 3)):
            label(s, pair, "ann1", "a" if n % 2 else "b", at(n + 1))
        pid = project.id
    # A file where the project's export folder goes: creating the folder fails with an OSError.
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    blocker = EXPORT_DIR / str(pid)
    blocker.write_text("not a folder")
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        created = client.post(f"/v1/projects/{pid}/exports", json={"format": "jsonl"})
        assert created.status_code == 202, created.text
        export_id = uuid.UUID(created.json()["id"])

        def run() -> ExportRun:
            with db.session() as s:
                return s.get_one(ExportRun, export_id)

        def first_attempt_over() -> bool:
            current = run()
            return current.attempts > 1 or (current.attempts == 1 and current.status != ExportStatus.RUNNING)

        deadline = time.monotonic() + 120  # the worker loads the embedding model first
        while not first_attempt_over():
            assert time.monotonic() < deadline, "the worker never finished a first attempt"
            time.sleep(0.05)
        blocker.unlink()  # the storage is back; Celery's retry (0-2 s later, with jitter) finds it
        deadline = time.monotonic() + 60
        while (current := run()).status not in (ExportStatus.SUCCEEDED, ExportStatus.FAILED):
            assert time.monotonic() < deadline, f"export still {current.status}"
            time.sleep(0.1)
    assert (current.status, current.error) == (ExportStatus.SUCCEEDED, None)
    assert current.attempts >= 2  # at least one failed attempt, then the one that wrote the file
    assert celery_worker.poll() is None, "the worker process died"
