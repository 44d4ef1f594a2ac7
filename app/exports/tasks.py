"""Export task: take the run, stream it from a read-only snapshot, finish it; each step its own unit of work.

A transient error (the database restarting, the export storage timing out) puts the run back to queued,
fenced by the attempt that held it, and the runner's retry takes it again; only the last attempt, or an
error no retry can cure (a bug, bad data), marks it failed, with the error.
"""

from __future__ import annotations

import logging
import time
import uuid

from app import metrics
from app.config import get_settings
from app.db.session import Database, get_database
from app.exports import service, snapshot
from app.exports.models import ExportRun
from app.exports.service import Superseded
from app.tasks import DATABASE_ERRORS, ONLY_ATTEMPT, Attempt, RetryPolicy, task

log = logging.getLogger(__name__)

# OSError covers the storage: a local disk and fsspec filesystems (s3fs, gcsfs) raise it, TimeoutError
# included. A permanent one (permission denied, a full disk) fails after the last attempt, minutes later.
EXPORT_RETRY = RetryPolicy(max_attempts=5, backoff=2, backoff_max=120, transient=(*DATABASE_ERRORS, OSError))


class Heartbeat:
    """Marks the run alive at most every ``interval`` seconds; raises Superseded once it lost the run."""

    def __init__(self, db: Database, export_id: uuid.UUID, attempt: int, interval: float) -> None:
        self.db, self.export_id, self.attempt, self.interval = db, export_id, attempt, interval
        self.last = time.monotonic()

    def __call__(self) -> None:
        if time.monotonic() - self.last >= self.interval:
            self.beat()

    def beat(self) -> None:
        with self.db.session() as session:
            service.heartbeat(session, self.export_id, self.attempt)
        self.last = time.monotonic()


def take(db: Database, export_id: uuid.UUID) -> int | None:
    """Take a queued run in its own unit of work; the attempt number it now holds, or None."""
    with db.session() as session:
        return service.take(session, export_id)


@task("exports.run_export", retry=EXPORT_RETRY)
def run_export(export_id: str, *, attempt: Attempt = ONLY_ATTEMPT) -> None:
    """Write the export's data file and manifest, then record them. A finished export is never rewritten."""
    db = get_database()
    eid = uuid.UUID(export_id)
    held = take(db, eid)
    if held is None:
        return
    settings = get_settings()
    beat = Heartbeat(db, eid, held, settings.export_heartbeat_seconds)
    try:
        with db.session() as session:
            run = session.get_one(ExportRun, eid)
            session.expunge(run)
        started = time.perf_counter()
        timeout_s = settings.db_statement_timeout_ms / 1000 or settings.export_stale_after_seconds
        if not snapshot.settle(db, run.snapshot_at, settings.export_settle_seconds, timeout_s, beat):
            log.warning("exports.unsettled", extra={"export_id": export_id, "waited_s": timeout_s})
        with snapshot.read_session(db) as session:
            result = service.write_files(session, run, beat, settings.export_row_group_rows)
        with db.session() as session:
            service.finish(session, eid, held, result)
        metrics.EXPORT_SECONDS.labels(run.format).observe(time.perf_counter() - started)
        log.info("exports.finished", extra={"export_id": export_id, "rows": result["counts"]["rows"]})
    except Superseded:
        log.warning("exports.superseded", extra={"export_id": export_id, "attempt": held})
    except Exception as exc:
        retry = attempt.will_retry(exc)
        # If this write fails too (the database is still down), the run stays running with a stale
        # heartbeat and maintenance.reconcile queues it again.
        with db.session() as session:
            if retry:
                service.requeue(session, eid, held)
            else:
                service.fail(session, eid, held, exc)
        log.warning(
            "exports.retrying" if retry else "exports.failed",
            extra={"export_id": export_id, "attempt": held, "error": repr(exc)[:500]},
        )
        raise
