"""An export outlives a transient error (a storage timeout, a database restart): the run goes back to queued,
the retry runs it again, and it fails only after the last attempt. A bug or bad data fails at once."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app import background
from app.exports import storage
from app.exports.models import ExportRun, ExportStatus
from tests.exports.helpers import at, label
from tests.factories import make_pairs, make_project


def seed(db: Any) -> uuid.UUID:
    with db.session() as s:
        project = make_project(s)
        for n, pair in enumerate(make_pairs(s, project, 3)):
            label(s, pair, "ann1", "a" if n % 2 else "b", at(n + 1))
        return project.id


@pytest.fixture
def storage_fails(monkeypatch: pytest.MonkeyPatch) -> Any:
    """storage.write raises the given error on its first `times` calls (the file is never opened)."""
    original = storage.write
    calls: list[str] = []

    def arm(error: BaseException, times: int) -> list[str]:
        @contextlib.contextmanager
        def write(location: str, name: str) -> Iterator[Any]:
            calls.append(name)
            if len(calls) <= times:
                raise error
            with original(location, name) as handle:
                yield handle

        monkeypatch.setattr(storage, "write", write)
        return calls

    return arm


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> background.EmbeddedRunner:
    runner = background.get_runner()
    monkeypatch.setattr(runner, "retry_delay_scale", 0.0)
    return runner


def queue_export(client: Any, pid: uuid.UUID) -> str:
    created = client.post(f"/v1/projects/{pid}/exports", json={"format": "jsonl"})
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def finished(db: Any, export_id: str, timeout: float = 30.0) -> ExportRun:
    deadline = time.monotonic() + timeout
    while True:
        with db.session() as s:
            run = s.get_one(ExportRun, uuid.UUID(export_id))
        if run.status in (ExportStatus.SUCCEEDED, ExportStatus.FAILED) and background.get_runner().idle():
            return run
        assert time.monotonic() < deadline, f"export still {run.status} after {timeout} s"
        time.sleep(0.05)


class TestOnTheEmbeddedRunner:
    def test_a_storage_timeout_once_is_retried_and_the_export_succeeds(
        self, db: Any, client: Any, storage_fails: Any, fast_retries: Any
    ) -> None:
        calls = storage_fails(TimeoutError("storage timed out"), times=1)
        run = finished(db, queue_export(client, seed(db)))
        assert (run.status, run.attempts, run.error, run.rows) == (ExportStatus.SUCCEEDED, 2, None, 3)
        assert calls == ["data.jsonl", "data.jsonl", "state.npy", "manifest.json"]

    def test_a_transient_error_on_every_attempt_fails_after_the_last(
        self, db: Any, client: Any, storage_fails: Any, fast_retries: Any
    ) -> None:
        calls = storage_fails(TimeoutError("storage timed out"), times=100)
        run = finished(db, queue_export(client, seed(db)))
        assert (run.status, run.attempts) == (ExportStatus.FAILED, 5)
        assert "storage timed out" in (run.error or "")
        assert len(calls) == 5

    def test_a_non_transient_error_fails_at_once(
        self, db: Any, client: Any, storage_fails: Any, fast_retries: Any
    ) -> None:
        calls = storage_fails(ValueError("bad data"), times=100)
        run = finished(db, queue_export(client, seed(db)))
        assert (run.status, run.attempts) == (ExportStatus.FAILED, 1)
        assert "bad data" in (run.error or "")
        assert len(calls) == 1


class TestOnCelery:
    def test_the_celery_task_retries_a_transient_error_and_succeeds(
        self, db: Any, client: Any, recorded_tasks: Any, storage_fails: Any
    ) -> None:
        from workers.tasks import registered

        export_id = queue_export(client, seed(db))
        calls = storage_fails(OSError("connection reset by the object store"), times=1)
        # apply() runs the task and its retries here, as a worker would (without the countdown).
        registered["exports.run_export"].apply(kwargs={"export_id": export_id})
        with db.session() as s:
            run = s.get_one(ExportRun, uuid.UUID(export_id))
        assert (run.status, run.attempts, run.error) == (ExportStatus.SUCCEEDED, 2, None)
        assert calls == ["data.jsonl", "data.jsonl", "state.npy", "manifest.json"]

    def test_the_celery_task_gives_up_after_its_max_retries(
        self, db: Any, client: Any, recorded_tasks: Any, storage_fails: Any
    ) -> None:
        from workers.tasks import registered

        export_id = queue_export(client, seed(db))
        storage_fails(TimeoutError("storage timed out"), times=100)
        result = registered["exports.run_export"].apply(kwargs={"export_id": export_id})
        assert isinstance(result.result, TimeoutError)
        with db.session() as s:
            run = s.get_one(ExportRun, uuid.UUID(export_id))
        assert (run.status, run.attempts) == (ExportStatus.FAILED, 5)
        assert "storage timed out" in (run.error or "")
