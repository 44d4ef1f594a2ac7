"""The task outbox: a task asked for in a unit of work is never lost, and runs once at a time.

Every send recorded with ``send_after_commit`` (app/db/after_commit.py) inserts a ``task_outbox`` row in
the same transaction; the message carries the row's id (the keyword ``_outbox``). Its life:

1. **Sent** after the outermost COMMIT (``sent_at`` is set at insert). A failed send (the broker down)
   clears ``sent_at``.
2. **Held** by the run that takes it (``claim``: a compare-and-set that stamps a run token and a
   heartbeat). A message whose row is held by a live run, or gone, is a duplicate (a redelivery after the
   broker's visibility timeout, a resend that crossed a slow run): it is dropped without running. Celery
   workers beat every ``REAL_OUTBOX_HEARTBEAT_SECONDS`` while the task runs.
3. **Gone** when the task finishes (or fails for good: the task's own failure handling records that). A
   run that fails with a retry to come hands the row back, due when the retry is.

``relay`` (the periodic task ``outbox.relay``, every ``REAL_OUTBOX_RELAY_INTERVAL_SECONDS``) sends again
what is due: rows whose send failed; rows whose run stopped beating for ``REAL_OUTBOX_STALE_AFTER_SECONDS``
(a worker killed mid-task); rows sent ``REAL_OUTBOX_LOST_AFTER_SECONDS`` ago, never taken, while their
queue is empty (a message lost with the broker's memory, or held unacknowledged by a dead worker). A row
waiting in a busy queue, or held by a live run, is never sent twice: on the success path every task runs
once. The design and its timings are in docs/design.md ("Recovery").
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.orm import Session

from app import logging as logcontext
from app.config import get_settings
from app.db.base import utcnow
from app.outbox.models import TaskOutbox

log = logging.getLogger(__name__)

KEY = "_outbox"
RELAY_TASK = "outbox.relay"
_BATCH = 500


def record(session: Session, task_name: str, kwargs: dict[str, Any]) -> uuid.UUID:
    """Insert the task's row in the session's transaction; its id, for the message."""
    row_id = uuid.uuid4()
    now = utcnow()
    session.execute(
        insert(TaskOutbox).values(
            id=row_id, task=task_name, kwargs=kwargs, created_at=now, sent_at=now, headers=_sender_context()
        )
    )
    return row_id


def record_many(session: Session, task_name: str, kwargs_list: list[dict[str, Any]]) -> list[uuid.UUID]:
    """``record`` for several sends of one task, in one INSERT (a big ingest asks for many chunks)."""
    now = utcnow()
    headers = _sender_context()
    ids = [uuid.uuid4() for _ in kwargs_list]
    if ids:
        session.execute(
            insert(TaskOutbox),
            [
                {
                    "id": row_id,
                    "task": task_name,
                    "kwargs": kwargs,
                    "created_at": now,
                    "sent_at": now,
                    "headers": headers,
                }
                for row_id, kwargs in zip(ids, kwargs_list, strict=True)
            ],
        )
    return ids


def _sender_context() -> dict[str, str] | None:
    """The log context a send carries (request id, project), kept for a resend from another process."""
    return logcontext.task_headers() or None


@contextmanager
def sent_as(resend: Resend) -> Iterator[None]:
    """Send ``resend`` in the context of the request that first asked for it: the message carries the same
    request id and project as the first send did (Celery headers or the embedded runner's queue)."""
    sent = resend.headers or {}
    with logcontext.bound(
        request_id=sent.get(logcontext.REQUEST_ID_HEADER), project_id=sent.get(logcontext.PROJECT_ID_HEADER)
    ):
        yield


def message(row_id: uuid.UUID | str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The task's keyword arguments as sent: its own, and its outbox row."""
    return {**kwargs, KEY: str(row_id)}


def mark_unsent(session_factory: Callable[[], Session], row_id: str) -> None:
    """The send failed: the relay sends it when the broker is back. Best effort (the database may be the
    thing that is down; the row then looks sent and is resent as lost)."""
    try:
        with session_factory() as session, session.begin():
            session.execute(
                update(TaskOutbox)
                .where(TaskOutbox.id == uuid.UUID(row_id), TaskOutbox.run_token.is_(None))
                .values(sent_at=None)
            )
    except Exception:
        log.warning("outbox.mark_unsent_failed", extra={"outbox_id": row_id}, exc_info=True)


@dataclass(frozen=True)
class Hold:
    """A run's hold on its outbox row."""

    row_id: uuid.UUID
    token: uuid.UUID


def claim(session: Session, row_id: uuid.UUID, now: datetime) -> Hold | None:
    """Take the row for this run; None when it is gone (done) or a live run holds it."""
    stale = now - timedelta(seconds=get_settings().outbox_stale_after_seconds)
    token = uuid.uuid4()
    taken = session.execute(
        update(TaskOutbox)
        .where(
            TaskOutbox.id == row_id,
            or_(TaskOutbox.run_token.is_(None), TaskOutbox.heartbeat_at < stale),
        )
        .values(run_token=token, heartbeat_at=now, runs=TaskOutbox.runs + 1)
        .execution_options(synchronize_session=False)
    )
    return Hold(row_id, token) if taken.rowcount == 1 else None  # type: ignore[attr-defined]


def beat(session: Session, hold: Hold, now: datetime) -> bool:
    """Mark the run alive; False once another run took the row over (or it is gone)."""
    done = session.execute(
        update(TaskOutbox)
        .where(TaskOutbox.id == hold.row_id, TaskOutbox.run_token == hold.token)
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def hand_back(session: Session, hold: Hold, due_at: datetime) -> None:
    """A retry is coming: release the row, looked at again only after the retry is due."""
    session.execute(
        update(TaskOutbox)
        .where(TaskOutbox.id == hold.row_id, TaskOutbox.run_token == hold.token)
        .values(run_token=None, heartbeat_at=None, sent_at=due_at)
        .execution_options(synchronize_session=False)
    )


def finish(session: Session, hold: Hold) -> None:
    """The task is over: the row goes (unless another run took it over meanwhile)."""
    session.execute(
        delete(TaskOutbox)
        .where(TaskOutbox.id == hold.row_id, TaskOutbox.run_token == hold.token)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Resend:
    row_id: uuid.UUID
    task: str
    kwargs: dict[str, Any]
    why: str  # "unsent", "stale" or "lost"
    headers: dict[str, str] | None = None  # the first sender's log context


def due(
    session: Session, now: datetime, queue_empty: Callable[[str], bool | None], queue_of: Callable[[str], str]
) -> list[Resend]:
    """What to send again now (see the module docstring), marked sent in this transaction.
    ``queue_empty(task)``: whether nothing waits where that task is sent (None: unknown); it is asked once
    per ``queue_of(task)``."""
    settings = get_settings()
    stale = now - timedelta(seconds=settings.outbox_stale_after_seconds)
    lost = now - timedelta(seconds=settings.outbox_lost_after_seconds)
    rows = session.scalars(
        select(TaskOutbox)
        .where(
            or_(
                TaskOutbox.sent_at.is_(None),
                (TaskOutbox.run_token.is_not(None)) & (TaskOutbox.heartbeat_at < stale),
                (TaskOutbox.run_token.is_(None)) & (TaskOutbox.sent_at < lost),
            )
        )
        .order_by(TaskOutbox.created_at)
        .limit(_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    empty: dict[str, bool | None] = {}
    out: list[Resend] = []
    for row in rows:
        if row.sent_at is None:
            why = "unsent"
        elif row.run_token is not None:
            why = "stale"
        else:
            key = queue_of(row.task)
            if key not in empty:
                empty[key] = queue_empty(row.task)
            if empty[key] is not True:  # waiting in a busy queue (or the broker cannot say): leave it
                continue
            why = "lost"
        row.sent_at, row.run_token, row.heartbeat_at = now, None, None
        row.resends += 1
        out.append(Resend(row.id, row.task, dict(row.kwargs), why, row.headers))
    session.flush()
    return out


class Heartbeat:
    """Beats for a held row from a thread of its own while the task runs (Celery workers)."""

    def __init__(self, session_factory: Callable[[], Session], hold: Hold, interval: float) -> None:
        self._factory, self._hold, self._interval = session_factory, hold, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="outbox-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                with self._factory() as session, session.begin():
                    if not beat(session, self._hold, utcnow()):
                        log.warning("outbox.hold_lost", extra={"outbox_id": str(self._hold.row_id)})
                        return
            except Exception:
                # The database is away: the run goes on; if it stays away, the row goes stale and is resent.
                log.warning("outbox.heartbeat_failed", extra={"outbox_id": str(self._hold.row_id)})
