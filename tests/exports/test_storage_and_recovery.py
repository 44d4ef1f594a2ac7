"""Export storage through fsspec (the real memory:// filesystem) and recovery of runs whose worker died."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from typing import Any

import fsspec
import pytest
from sqlalchemy import update

from app.db.base import utcnow
from app.exports import service, snapshot, tasks
from app.exports.models import ExportRun, ExportStatus
from app.outbox import tasks as outbox_tasks
from tests.conftest import EXPORT_DIR
from tests.exports.helpers import at, data_bytes, label, run_export
from tests.factories import make_pairs, make_project


def seed(db: Any, pairs: int = 3) -> uuid.UUID:
    with db.session() as s:
        project = make_project(s)
        for n, pair in enumerate(make_pairs(s, project, pairs)):
            label(s, pair, "ann1", "a" if n % 2 else "b", at(n + 1))
        return project.id


@pytest.fixture
def memory_bucket(override_settings: Any) -> Any:
    root = f"memory://real-align-test-{uuid.uuid4().hex[:8]}/exports"
    override_settings(export_url=root)
    yield root
    fs = fsspec.filesystem("memory")
    bucket = root.removeprefix("memory://").split("/")[0]
    if fs.exists(bucket):
        fs.rm(bucket, recursive=True)


def test_exports_go_to_an_fsspec_url_and_download_from_it(
    db: Any, client: Any, recorded_tasks: Any, memory_bucket: str
) -> None:
    pid = seed(db)
    run = run_export(db, pid, format="jsonl", compression="gzip", snapshot_at=at(10))
    assert run.status == ExportStatus.SUCCEEDED, run.error
    folder = f"{memory_bucket}/{pid}/{run.id}"
    assert run.location == folder
    assert run.path == f"{folder}/data.jsonl.gz"
    fs = fsspec.filesystem("memory")
    stored = fs.cat_file(f"{folder.removeprefix('memory://')}/data.jsonl.gz")
    assert hashlib.sha256(stored).hexdigest() == run.sha256
    assert len(stored) == run.bytes
    manifest = json.loads(fs.cat_file(f"{folder.removeprefix('memory://')}/manifest.json"))
    assert manifest["files"]["data.jsonl.gz"]["sha256"] == run.sha256
    assert not (EXPORT_DIR / str(pid)).exists()  # nothing went to the local directory
    # The API streams both files from the same storage.
    body = client.get(f"/v1/exports/{run.id}/file")
    assert body.status_code == 200
    assert body.content == stored
    assert body.headers["content-type"] == "application/gzip"
    assert body.headers["content-length"] == str(run.bytes)
    assert client.get(f"/v1/exports/{run.id}/manifest").json() == manifest
    # Same snapshot and request on local disk: the same bytes.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("REAL_EXPORT_URL")
        from app.config import get_settings

        get_settings.cache_clear()
        local = run_export(db, pid, format="jsonl", compression="gzip", snapshot_at=at(10))
    assert local.location == f"{EXPORT_DIR.resolve()}/{pid}/{local.id}"
    assert local.sha256 == run.sha256
    assert data_bytes(local) == stored


def _export_failing_mid_write(db: Any, pid: uuid.UUID, error: str) -> ExportRun:
    """Run an export whose rows break off after one row with `error`; the failed run as stored."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        yield {"prompt": "half a row"}
        raise RuntimeError(error)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "export_rows", broken)
        with pytest.raises(RuntimeError):
            run_export(db, pid)
    with db.session() as s:
        failed = s.query(ExportRun).one()
    assert failed.status == ExportStatus.FAILED
    assert error in (failed.error or "")
    return failed


def test_a_failed_write_publishes_nothing(db: Any, recorded_tasks: Any, memory_bucket: str) -> None:
    pid = seed(db)
    failed = _export_failing_mid_write(db, pid, "the database went away")
    folder = failed.location.removeprefix("memory://")
    assert not fsspec.filesystem("memory").exists(f"{folder}/data.jsonl")


def test_a_failed_local_write_leaves_no_partial_file(db: Any, recorded_tasks: Any) -> None:
    pid = seed(db)
    failed = _export_failing_mid_write(db, pid, "disk full")
    assert failed.location == f"{EXPORT_DIR.resolve()}/{pid}/{failed.id}"
    assert [p.name for p in (EXPORT_DIR / str(pid)).rglob("*") if p.is_file()] == []


def requeue_stale(db: Any) -> list[str]:
    """Every running export taken as stale now (as outbox.relay does after the real limit)."""
    with db.session() as s:
        return service.requeue_stale(s, stale_after_seconds=0)


def _age_heartbeat(db: Any, export_id: uuid.UUID, seconds: float) -> None:
    with db.session() as s:
        s.execute(
            update(ExportRun)
            .where(ExportRun.id == export_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_a_run_whose_worker_died_is_requeued_and_finished_once(
    db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(export_stale_after_seconds=60)
    pid = seed(db)
    with db.session() as s:
        from app.auth.context import BOOTSTRAP_ADMIN
        from app.exports.schemas import ExportRequest
        from app.projects.models import Project

        dead = service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest()).id
        alive = service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest()).id
    # Two workers take the runs; the first dies (its heartbeat goes stale), the second is still beating.
    assert tasks.take(db, dead) == 1
    assert tasks.take(db, alive) == 1
    _age_heartbeat(db, dead, 600)
    _age_heartbeat(db, alive, 5)
    recorded_tasks.clear()

    outbox_tasks.relay()
    assert ("exports.run_export", {"export_id": str(dead)}) in recorded_tasks
    assert ("exports.run_export", {"export_id": str(alive)}) not in recorded_tasks
    with db.session() as s:
        assert s.get_one(ExportRun, dead).status == ExportStatus.QUEUED
        assert s.get_one(ExportRun, alive).status == ExportStatus.RUNNING

    # The re-sent task runs it (attempt 2); a duplicate delivery does nothing.
    tasks.run_export(str(dead))
    tasks.run_export(str(dead))
    with db.session() as s:
        run = s.get_one(ExportRun, dead)
        assert (run.status, run.attempts) == (ExportStatus.SUCCEEDED, 2)
        finished = (run.sha256, run.finished_at)
    # The first worker comes back to life: its heartbeat tells it that it lost the run.
    with pytest.raises(service.Superseded):
        tasks.Heartbeat(db, dead, 1, interval=0).beat()
    with db.session() as s:
        run = s.get_one(ExportRun, dead)
        assert (run.status, run.sha256, run.finished_at) == (ExportStatus.SUCCEEDED, *finished)
    # A succeeded export is never rewritten, even if someone re-sends its task.
    assert requeue_stale(db) == [str(alive)]
    assert dead not in {uuid.UUID(x) for x in requeue_stale(db)}


def test_a_run_that_lost_its_lease_mid_write_stops_quietly(
    db: Any, recorded_tasks: Any, override_settings: Any
) -> None:
    """While a run writes, the reconciler takes it away (it looked stuck); the run notices and stops."""
    override_settings(export_heartbeat_seconds=0.000001)
    pid = seed(db, pairs=5)
    original = snapshot.export_rows
    stolen: list[str] = []

    def slow_rows(session: Any, run: Any, *args: Any, **kwargs: Any) -> Any:
        for n, row in enumerate(original(session, run, *args, **kwargs)):
            if n == 1 and not stolen:
                stolen.extend(requeue_stale(db))
            yield row

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "export_rows", slow_rows)
        run = run_export(db, pid)
    assert stolen == [str(run.id)]
    assert (run.status, run.error, run.attempts) == (ExportStatus.QUEUED, None, 1)
    tasks.run_export(str(run.id))
    with db.session() as s:
        done = s.get_one(ExportRun, run.id)
        assert (done.status, done.attempts, done.rows) == (ExportStatus.SUCCEEDED, 2, 5)
