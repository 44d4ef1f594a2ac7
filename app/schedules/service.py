"""Export schedules: set, read and remove them; and the periodic runner that turns due slots into exports.

The task ``exports.run_schedules`` (``app/schedules/tasks.py``) calls ``run_due`` for each due schedule of an
active project, each in its own transaction: it takes the slot with a compare-and-set on (revision,
next_run_at) and, in the same transaction, queues the export through ``app.exports.service.create`` as the
``scheduler`` caller. Two runners (two beats, a beat and a retry) therefore make one export per slot, and a
runner that was down for a while makes one catch-up export (of the newest missed slot), never one per
missed slot.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.context import Caller
from app.auth.models import Role
from app.errors import DomainError, NotFound
from app.exports import service as exports
from app.exports.models import ExportRun, ExportStatus
from app.exports.schemas import ExportRequest, iso
from app.projects.models import Project, ProjectStatus
from app.schedules import cron, repository
from app.schedules.models import ExportSchedule
from app.schedules.schemas import ExportScheduleRead, ExportScheduleSet

log = logging.getLogger(__name__)

# The caller scheduled exports are created (and audited) as: it may export any project.
SCHEDULER = Caller(name="scheduler", role=Role.ADMIN)


def first_run_at(every_seconds: int | None, cron_expression: str | None, now: datetime) -> datetime:
    """The first slot of a new timing: one interval from now, or the cron's next fire time after now."""
    if every_seconds is not None:
        return now + timedelta(seconds=every_seconds)
    assert cron_expression is not None
    return cron.parse(cron_expression).next_after(now)


def slot_and_next(schedule: ExportSchedule, now: datetime) -> tuple[datetime, datetime]:
    """For a due schedule: the newest slot at or before `now` (what to export) and the first slot after it.

    Every missed slot in between is skipped, so downtime yields one catch-up export. Interval slots stay
    on the grid of the first one (no drift by the runner's lateness).
    """
    due = schedule.next_run_at
    if schedule.every_seconds is not None:
        step = timedelta(seconds=schedule.every_seconds)
        slot = due + ((now - due) // step) * step
        return slot, slot + step
    assert schedule.cron is not None
    parsed = cron.parse(schedule.cron)
    return max(due, parsed.latest_at_or_before(now)), parsed.next_after(now)


# ------------------------------------------------------------------------------------------- the API


def get(session: Session, project: Project) -> ExportSchedule:
    """The project's export schedule, or 404."""
    schedule = session.get(ExportSchedule, project.id)
    if schedule is None:
        raise NotFound(f"project {project.id} has no export schedule")
    return schedule


def put(
    session: Session, caller: Caller, project: Project, body: ExportScheduleSet, now: datetime
) -> ExportSchedule:
    """Create or replace the schedule. The next slot is kept when the timing is unchanged (so a client
    that PUTs its configuration again does not push the next export back), else computed from now."""
    # Serialises concurrent PUTs of one project (NO KEY UPDATE: foreign-key checks are not blocked).
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update(key_share=True))
    schedule = session.get(ExportSchedule, project.id, populate_existing=True)
    timing = (body.every_seconds, body.cron)
    if schedule is None:
        schedule = ExportSchedule(project_id=project.id, revision=1, last_error=None)
        session.add(schedule)
        retimed = True
    else:
        retimed = (schedule.every_seconds, schedule.cron) != timing
        schedule.revision += 1
    schedule.every_seconds, schedule.cron = timing
    schedule.request = body.export_request()
    schedule.incremental = body.incremental
    if retimed:
        schedule.next_run_at = first_run_at(body.every_seconds, body.cron, now)
    session.flush()
    audit.record(
        session,
        caller,
        "export_schedule.set",
        "project",
        project.id,
        body.model_dump(mode="json") | {"next_run_at": iso(schedule.next_run_at)},
    )
    return schedule


def delete(session: Session, caller: Caller, project: Project) -> None:
    """Remove the schedule (no-op if there is none); its exports stay."""
    schedule = session.get(ExportSchedule, project.id)
    if schedule is None:
        return
    session.delete(schedule)
    session.flush()
    audit.record(session, caller, "export_schedule.deleted", "project", project.id)


def read(schedule: ExportSchedule) -> ExportScheduleRead:
    """The API view of a schedule."""
    return ExportScheduleRead(
        project_id=schedule.project_id,
        every_seconds=schedule.every_seconds,
        cron=schedule.cron,
        format=schedule.request["format"],
        style=schedule.request["style"],
        compression=schedule.request["compression"],
        include_partial=bool(schedule.request.get("include_partial", False)),
        filters=schedule.request["filters"],
        incremental=schedule.incremental,
        next_run_at=schedule.next_run_at,
        last_run_at=schedule.last_run_at,
        last_export_id=schedule.last_export_id,
        last_error=schedule.last_error,
        last_skip_reason=schedule.last_skip_reason,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


# ------------------------------------------------------------------------------------------- the runner


def due(session: Session, now: datetime) -> list[tuple[uuid.UUID, int, datetime]]:
    """(project id, revision, next_run_at) of schedules due by ``now`` in active projects, oldest first."""
    return repository.due(session, now)


def run_due(
    session: Session, project_id: uuid.UUID, *, revision: int, due_at: datetime, now: datetime
) -> uuid.UUID | None:
    """Take one due slot (compare-and-set) and queue its export; the export id, or None if another runner
    took the slot, the schedule changed, or the slot was skipped (see ExportSchedule.last_error)."""
    schedule = session.get(ExportSchedule, project_id)
    project = session.get(Project, project_id)
    if (
        schedule is None
        or project is None
        or project.status != ProjectStatus.ACTIVE
        or schedule.revision != revision
        or schedule.next_run_at != due_at
    ):
        return None
    slot, next_run_at = slot_and_next(schedule, now)
    if not repository.take_slot(
        session, project_id, revision=revision, due_at=due_at, next_run_at=next_run_at, now=now
    ):
        return None
    schedule.next_run_at, schedule.last_run_at = next_run_at, now  # as written by take_slot
    previous = session.get(ExportRun, schedule.last_export_id) if schedule.last_export_id else None
    if previous is not None and previous.status in (ExportStatus.QUEUED, ExportStatus.RUNNING):
        # Exports slower than the interval would pile up (and an incremental one has no base yet).
        schedule.last_error = (
            f"slot {iso(slot)} skipped: the previous scheduled export {previous.id} "
            f"is still {previous.status}"
        )
        schedule.last_skip_reason = None
        log.warning("exports.schedule_skipped", extra={"project_id": str(project_id), "slot": iso(slot)})
        return None
    since = None
    if schedule.incremental and previous is not None:
        # A failed export leaves the chain where it was: continue from the base it had.
        since = previous.id if previous.status == ExportStatus.SUCCEEDED else previous.since_export_id
    base = session.get(ExportRun, since) if since is not None else None
    request = ExportRequest.model_validate(schedule.request | {"snapshot_at": slot, "since": since})
    chain = (request.style, request.filters.normalised(), request.include_partial)
    if base is not None and (
        (base.style, base.filters or {}, base.include_partial) != chain
        or not (base.manifest or {}).get("state")
    ):
        # The schedule now asks for other rows than its chain holds, or the chain's last export predates
        # incremental state: a new chain starts with a full export.
        base, request = None, request.model_copy(update={"since": None})
    if base is not None and exports.unchanged_since(session, project, base, slot):
        schedule.last_error = None
        schedule.last_skip_reason = (
            f"slot {iso(slot)} skipped: nothing changed since export {base.id} "
            f"(snapshot {iso(base.snapshot_at)})"
        )
        log.info("exports.schedule_nothing_new", extra={"project_id": str(project_id), "slot": iso(slot)})
        return None
    try:
        run = exports.create(session, SCHEDULER, project, request, now=now)
    except DomainError as exc:
        schedule.last_error = f"slot {iso(slot)}: {exc.detail or exc.title}"
        schedule.last_skip_reason = None
        log.warning("exports.schedule_refused", extra={"project_id": str(project_id), "error": exc.detail})
        return None
    schedule.last_export_id, schedule.last_error, schedule.last_skip_reason = run.id, None, None
    session.flush()
    return run.id
