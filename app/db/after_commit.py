"""Task sends recorded during a unit of work, sent only after its outermost COMMIT.

Each send belongs to the (sub)transaction it was recorded in. SQLAlchemy fires ``after_commit`` when a
SAVEPOINT is released too, not only at the real COMMIT, and ``after_rollback`` when a SAVEPOINT is rolled
back; so a released savepoint hands its sends to its parent, a rolled-back one drops its own (and those of
savepoints released into it), and only the outermost COMMIT dispatches. A worker that takes the message at
once therefore always finds the rows (ingest, for one, runs inside a savepoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

_KEY = "after_commit_sends"

# (the transaction it was recorded in, or None for "before any", task name, keyword arguments)
_Send = tuple[SessionTransaction | None, str, dict[str, Any]]


def _pending(session: Session) -> list[_Send]:
    pending: list[_Send] = session.info.setdefault(_KEY, [])
    return pending


def send_after_commit(session: Session, task_name: str, **kwargs: Any) -> None:
    """Record a task to send once this session's outermost transaction has committed, with its outbox row
    (app/outbox/service.py) written in this same transaction: committed work never loses its task."""
    from app.outbox import service as outbox

    owner = session.get_nested_transaction() or session.get_transaction()
    row = outbox.record(session, task_name, kwargs)
    _pending(session).append((owner, task_name, outbox.message(row, kwargs)))


def send_many_after_commit(session: Session, task_name: str, kwargs_list: list[dict[str, Any]]) -> None:
    """``send_after_commit`` for several sends of one task, their outbox rows written in one INSERT."""
    from app.outbox import service as outbox

    owner = session.get_nested_transaction() or session.get_transaction()
    rows = outbox.record_many(session, task_name, kwargs_list)
    _pending(session).extend(
        (owner, task_name, outbox.message(row, kwargs)) for row, kwargs in zip(rows, kwargs_list, strict=True)
    )


def install(session_factory: Any, dispatch: Callable[[str, dict[str, Any]], bool | None]) -> None:
    """Wire the session factory so recorded sends go to `dispatch` after the outermost COMMIT (a send
    that returns False leaves its outbox row unsent, for outbox.relay)."""

    @event.listens_for(session_factory, "after_commit")
    def _flush(session: Session) -> None:
        if session.in_nested_transaction():
            return  # a SAVEPOINT was released: its sends move to the parent in after_transaction_end
        pending = session.info.pop(_KEY, [])
        for _owner, task_name, kwargs in pending:
            if dispatch(task_name, kwargs) is False:
                from app.outbox import service as outbox

                outbox.mark_unsent(session_factory, kwargs[outbox.KEY])

    @event.listens_for(session_factory, "after_transaction_end")
    def _hand_to_parent(session: Session, transaction: SessionTransaction) -> None:
        # Runs after a savepoint's release or rollback; after a rollback its sends are gone already.
        if transaction.nested and _KEY in session.info:
            session.info[_KEY] = [
                (transaction.parent if owner is transaction else owner, name, kwargs)
                for owner, name, kwargs in session.info[_KEY]
            ]

    @event.listens_for(session_factory, "after_rollback")
    def _drop(session: Session) -> None:
        savepoint = session.get_nested_transaction()
        if savepoint is None:
            session.info.pop(_KEY, None)
            return
        session.info[_KEY] = [send for send in _pending(session) if send[0] is not savepoint]
