"""DPO exports: queue one from a request, run it (streaming, deterministic), find and read finished ones.

``create(session, caller, project, request)`` is the one entry point, for the API and for schedulers alike.
The task ``exports.run_export`` (``app/exports/tasks.py``) takes the run with a compare-and-set (``take``: of
two deliveries one writes), heartbeats while it works, and finishes only if it still holds the run; after a
transient error it puts the run back to queued for its retry (``requeue``), after the last attempt or any
other error it marks it failed (``fail``). ``requeue_stale`` gives a run whose worker died back to the
queue. See docs/exports.md for the file formats and the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from importlib import metadata
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate
from app.audit import service as audit
from app.auth.context import Caller
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.errors import Conflict, InvalidInput, NotFound
from app.exports import rows as R
from app.exports import snapshot, storage, writers
from app.exports.models import ExportRun, ExportStatus
from app.exports.rows import prompt_text
from app.exports.schemas import ExportRequest, iso
from app.labels import outcome
from app.projects import service as projects
from app.projects.models import Project
from app.webhooks import service as webhooks

__all__ = [
    "MANIFEST_NAME",
    "SCHEMA_VERSION",
    "Superseded",
    "create",
    "fail",
    "finish",
    "get",
    "heartbeat",
    "latest",
    "list_exports",
    "prompt_text",
    "requeue",
    "requeue_stale",
    "take",
    "write_files",
]

log = logging.getLogger(__name__)

# Bump when a column, a formula or the manifest changes meaning (docs/exports.md keeps the history).
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
STATE_NAME = "state.npy"
JSONL_BATCH_ROWS = 500


@cache
def code_version() -> str:
    try:
        return f"real-align {metadata.version('real-align')}"
    except metadata.PackageNotFoundError:
        return "real-align unknown"


# ------------------------------------------------------------------------------------------- requests


def create(
    session: Session, caller: Caller, project: Project, request: ExportRequest, *, now: datetime | None = None
) -> ExportRun:
    """Queue an export of the project's labels as of ``request.snapshot_at`` (default: now)."""
    now = now or utcnow()
    snapshot_at = request.snapshot_at or now
    if snapshot_at > now:
        raise InvalidInput(f"snapshot_at {iso(snapshot_at)} is in the future", field="snapshot_at")
    filters = request.filters.normalised()
    since_snapshot_at = None
    if request.since is not None:
        since = session.get(ExportRun, request.since)
        if since is None or since.project_id != project.id:
            raise InvalidInput(f"no export {request.since} in this project", field="since")
        if since.status != ExportStatus.SUCCEEDED:
            raise InvalidInput(f"export {since.id} is {since.status}, not succeeded", field="since")
        if since.snapshot_at > snapshot_at:
            raise InvalidInput(
                f"export {since.id} has a later snapshot ({iso(since.snapshot_at)}) than this one",
                field="since",
            )
        if (since.manifest or {}).get("state") is None:
            raise InvalidInput(
                f"export {since.id} was made before incremental exports kept their state "
                "(schema_version 1); make a full export and continue from it",
                field="since",
            )
        chained = (since.style, since.filters or {}, since.include_partial)
        if chained != (request.style, filters, request.include_partial):
            # Rows of another style, or chosen by other filters, cannot be concatenated with these.
            raise InvalidInput(
                f"export {since.id} has another style, filters or include_partial than this request; an "
                "incremental export continues its chain with the same ones",
                field="since",
            )
        since_snapshot_at = since.snapshot_at
    run = ExportRun(
        project_id=project.id,
        format=request.format,
        style=request.style,
        compression=request.compression,
        since_export_id=request.since,
        since_snapshot_at=since_snapshot_at,
        filters=filters,
        include_partial=request.include_partial,
        status=ExportStatus.QUEUED,
        snapshot_at=snapshot_at,
        attempts=0,
    )
    session.add(run)
    session.flush()
    audit.record(
        session,
        caller,
        "export.created",
        "export",
        run.id,
        {"project_id": str(project.id), **request_of(run)},
    )
    send_after_commit(session, "exports.run_export", export_id=str(run.id))
    return run


def request_of(run: ExportRun) -> dict[str, Any]:
    """The run's request as stored, every default filled in (what the manifest records)."""
    return {
        "format": run.format,
        "style": run.style,
        "compression": run.compression,
        "snapshot_at": iso(run.snapshot_at),
        "since": str(run.since_export_id) if run.since_export_id else None,
        "include_partial": bool(run.include_partial),
        "filters": run.filters or {},
    }


def get(session: Session, caller: Caller, export_id: uuid.UUID) -> ExportRun:
    """An export run of a project the caller may see, or 404."""
    run = session.get(ExportRun, export_id)
    if run is None or not projects.can_see(caller, session.get_one(Project, run.project_id)):
        raise NotFound(f"no export {export_id}")
    return run


def list_exports(
    session: Session, project: Project, *, limit: int, cursor: str | None, status: str | None = None
) -> PageRows[ExportRun]:
    """A page of the project's exports, newest first."""
    query = select(ExportRun).where(ExportRun.project_id == project.id)
    if status is not None:
        query = query.where(ExportRun.status == status)
    return paginate(session, query, ExportRun.id, limit=limit, cursor=cursor, descending=True)


def latest(session: Session, project: Project, fmt: str | None = None) -> ExportRun:
    """The project's newest succeeded export (of this format, if given), or 404."""
    query = select(ExportRun).where(
        ExportRun.project_id == project.id, ExportRun.status == ExportStatus.SUCCEEDED
    )
    if fmt is not None:
        query = query.where(ExportRun.format == fmt)
    run = session.scalars(query.order_by(ExportRun.id.desc()).limit(1)).first()
    if run is None:
        raise NotFound(f"project {project.id} has no succeeded export" + (f" in {fmt}" if fmt else ""))
    return run


# ------------------------------------------------------------------------------------------- files


def data_name(run: ExportRun) -> str:
    if run.location is None and run.path:  # an export written before manifests: <project>/<id>.jsonl
        return PurePosixPath(run.path).name
    return writers.data_file_name(run.format, run.compression)


def media_type(run: ExportRun) -> str:
    return writers.media_type(run.format, run.compression)


def _location(run: ExportRun) -> str:
    if run.status != ExportStatus.SUCCEEDED or not run.path:
        raise Conflict(f"export {run.id} is {run.status}, not succeeded")
    if run.location is None:
        return str(PurePosixPath(run.path).parent)
    return run.location


def data_file(run: ExportRun) -> tuple[str, str]:
    """(location, name) of a succeeded export's data file; 409 while not ready, 404 if it is gone."""
    location, name = _location(run), data_name(run)
    if not storage.exists(location, name):
        raise NotFound(f"the file of export {run.id} is missing from the export storage")
    return location, name


def manifest_bytes(run: ExportRun) -> bytes:
    """manifest.json of a succeeded export, as stored."""
    location = _location(run)
    if run.location is None or not storage.exists(location, MANIFEST_NAME):
        raise NotFound(f"export {run.id} has no manifest (written before manifests, or removed)")
    return storage.read_bytes(location, MANIFEST_NAME)


# ------------------------------------------------------------------------------------------- the task


class Superseded(Exception):
    """This run no longer holds the export (it was re-queued as stuck and taken by another run)."""


def _held(export_id: uuid.UUID, attempt: int) -> tuple[Any, ...]:
    return (
        ExportRun.id == export_id,
        ExportRun.status == ExportStatus.RUNNING,
        ExportRun.attempts == attempt,
    )


def heartbeat(session: Session, export_id: uuid.UUID, attempt: int) -> None:
    """Mark the run alive; Superseded once this attempt no longer holds it."""
    held = session.execute(
        update(ExportRun)
        .where(*_held(export_id, attempt))
        .values(heartbeat_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != 1:  # type: ignore[attr-defined]
        raise Superseded(str(export_id))


def take(session: Session, export_id: uuid.UUID) -> int | None:
    """Compare-and-set queued → running; the attempt number this run holds, or None if it is not ours."""
    settings = get_settings()
    run = session.get(ExportRun, export_id)
    if run is None or run.status != ExportStatus.QUEUED:
        return None
    now = utcnow()
    taken = session.execute(
        update(ExportRun)
        .where(
            ExportRun.id == export_id,
            ExportRun.status == ExportStatus.QUEUED,
            ExportRun.attempts == run.attempts,
        )
        .values(
            status=ExportStatus.RUNNING,
            attempts=run.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            # Fixed at the first take: a re-run writes the same files to the same place.
            location=run.location or storage.location_for(settings, run.project_id, run.id),
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return run.attempts + 1


def finish(session: Session, export_id: uuid.UUID, attempt: int, result: dict[str, Any]) -> None:
    """Record the written files on the run this attempt holds (Superseded if it lost it) and its webhook."""
    done = session.execute(
        update(ExportRun)
        .where(*_held(export_id, attempt))
        .values(
            status=ExportStatus.SUCCEEDED,
            rows=result["counts"]["rows"],
            sha256=result["file"]["sha256"],
            bytes=result["file"]["bytes"],
            path=result["path"],
            manifest=result["manifest"],
            finished_at=utcnow(),
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Superseded(str(export_id))
    webhooks.export_succeeded(session, export_id)  # the webhook event, committed with the success


def requeue(session: Session, export_id: uuid.UUID, attempt: int) -> bool:
    """Put the run this attempt holds back to queued, for the task's retry to take; False if it lost it."""
    moved = session.execute(
        update(ExportRun)
        .where(*_held(export_id, attempt))
        .values(status=ExportStatus.QUEUED)
        .execution_options(synchronize_session=False)
    )
    return bool(moved.rowcount == 1)  # type: ignore[attr-defined]


def fail(session: Session, export_id: uuid.UUID, attempt: int, error: BaseException) -> None:
    """Mark the run this attempt holds failed, with the error."""
    session.execute(
        update(ExportRun)
        .where(*_held(export_id, attempt))
        .values(status=ExportStatus.FAILED, error=repr(error)[:2000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def previous_state(session: Session, run: ExportRun) -> snapshot.State | None:
    """The state of the export an incremental one continues (None for a full export)."""
    if run.since_export_id is None:
        return None
    since = session.get(ExportRun, run.since_export_id)
    entry = (since.manifest or {}).get("state") if since is not None else None
    if since is None or since.location is None or not entry:
        raise RuntimeError(f"export {run.since_export_id}, which this one continues, is gone or has no state")
    blob = storage.read_bytes(since.location, entry["name"])
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise RuntimeError(f"the state file of export {since.id} does not match its manifest")
    return snapshot.State.from_bytes(blob)


def write_files(
    session: Session, run: ExportRun, beat: Callable[[], None], row_group_rows: int
) -> dict[str, Any]:
    """Stream the rows read in ``session`` (snapshot.read_session) into the data file, then write the
    state and manifest.json; what the run row should record. ``beat`` is called as the work goes on."""
    assert run.location is not None
    name = writers.data_file_name(run.format, run.compression)
    tally = snapshot.Tally()
    wanted = session.get_one(Project, run.project_id).annotations_per_pair
    inputs = snapshot.inputs(session, run.project_id, run.snapshot_at)
    previous = previous_state(session, run)
    with snapshot.frozen_heap():
        stats = snapshot.label_stats(session, run.project_id, run.snapshot_at, beat)
        state = snapshot.StateBuilder()
        with storage.write(run.location, name) as raw:
            sink = writers.HashingSink(raw)
            writer = writers.Pipelined(writers.open_writer(run.format, run.style, run.compression, sink))
            # Parquet writes a row group per batch; JSONL needs no batching beyond amortising the writes.
            batch_rows = row_group_rows if run.format == "parquet" else JSONL_BATCH_ROWS
            batch: list[Any] = []
            rows = snapshot.export_rows(
                session, run, stats, tally, beat, wanted=wanted, state=state, previous=previous
            )
            try:
                for row in rows:
                    batch.append(row)
                    if len(batch) >= batch_rows:
                        writer.write(batch)
                        batch = []
                writer.write(batch)
            finally:
                # On an error too: the rows' fetching thread and the writer's end before the session does.
                rows.close()
                writer.stop()
            writer.close()
    current = state.build()
    if previous is not None:
        tally.retracted = snapshot.retracted(previous, current)
    state_bytes = current.to_bytes()
    beat()
    with storage.write(run.location, STATE_NAME) as raw:
        raw.write(state_bytes)
    file_entry = {
        "sha256": sink.digest.hexdigest(),
        "bytes": sink.size,
        "media_type": writers.media_type(run.format, run.compression),
    }
    counts = tally.as_dict()
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "code_version": code_version(),
        "export_id": str(run.id),
        "project_id": str(run.project_id),
        "created_at": iso(run.created_at),
        "request": request_of(run),
        "snapshot_at": iso(run.snapshot_at),
        "since_snapshot_at": iso(run.since_snapshot_at) if run.since_snapshot_at else None,
        "annotations_per_pair": wanted,
        "columns": R.columns(),
        "counts": counts,
        "retracted": tally.retracted,
        "replaced": tally.replaced,
        "dawid_skene": stats.dawid_skene_summary(),
        "label_smoothing": {
            "formula": "clip(1 - agreement, 0, 0.5); "
            "weight = (1 - 2 * label_smoothing) * min(1, num_labels / annotations_per_pair)",
            "single_label": outcome.SINGLE_LABEL_SMOOTHING,
            "reviewed": outcome.REVIEWED_SMOOTHING,
        },
        "inputs": inputs,
        "state": {
            "name": STATE_NAME,
            "sha256": hashlib.sha256(state_bytes).hexdigest(),
            "bytes": len(state_bytes),
            "pairs": len(current.rows),
        },
        "files": {name: file_entry},
        "writer": writers.writer_info(run.format, run.compression, row_group_rows),
    }
    body = (json.dumps(manifest, ensure_ascii=False, indent=2, allow_nan=False) + "\n").encode("utf-8")
    beat()
    with storage.write(run.location, MANIFEST_NAME) as raw:
        raw.write(body)
    return {
        "counts": counts,
        "file": file_entry,
        "path": storage.local_path(run.location, name) or f"{run.location}/{name}",
        "manifest": manifest,
    }


def unchanged_since(session: Session, project: Project, since: ExportRun, as_of: datetime) -> bool:
    """Whether nothing an export depends on changed between ``since``'s snapshot and ``as_of`` (so an
    incremental export would hold nothing new)."""
    recorded = (since.manifest or {}).get("inputs")
    return recorded is not None and recorded == snapshot.inputs(session, project.id, as_of)


# ------------------------------------------------------------------------------------------- recovery


def requeue_stale(
    session: Session, now: datetime | None = None, stale_after_seconds: float | None = None
) -> list[str]:
    """Running exports whose heartbeat is older than the limit, put back to queued (compare-and-set on the
    attempt and the stale heartbeat, so a live run that just beat is left alone); their ids, to dispatch."""
    settings = get_settings()
    now = now or utcnow()
    age = settings.export_stale_after_seconds if stale_after_seconds is None else stale_after_seconds
    cutoff = now - timedelta(seconds=age)
    requeued: list[str] = []
    stuck = session.execute(
        select(ExportRun.id, ExportRun.attempts).where(
            ExportRun.status == ExportStatus.RUNNING,
            ExportRun.heartbeat_at.is_(None) | (ExportRun.heartbeat_at <= cutoff),
        )
    ).all()
    for export_id, attempts in stuck:
        moved = session.execute(
            update(ExportRun)
            .where(
                *_held(export_id, attempts),
                ExportRun.heartbeat_at.is_(None) | (ExportRun.heartbeat_at <= cutoff),
            )
            .values(status=ExportStatus.QUEUED)
            .execution_options(synchronize_session=False)
        )
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            requeued.append(str(export_id))
    if requeued:
        log.warning("exports.requeued_stale", extra={"exports": requeued})
    return requeued


def requeue_stale_and_send(session: Session) -> list[str]:
    """``requeue_stale``, and each run's task sent again (through the outbox) after this unit of work."""
    requeued = requeue_stale(session)
    for export_id in requeued:
        send_after_commit(session, "exports.run_export", export_id=export_id)
    return requeued
