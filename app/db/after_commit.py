"""Task sends recorded during a unit of work and sent only after it commits (dropped on rollback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

_KEY = "after_commit_sends"


def send_after_commit(session: Session, task_name: str, **kwargs: Any) -> None:
    """Record a task to send once this session's transaction has committed."""
    session.info.setdefault(_KEY, []).append((task_name, kwargs))


def install(session_factory: Any, dispatch: Callable[[str, dict[str, Any]], None]) -> None:
    """Wire the session factory so recorded sends go to `dispatch` after COMMIT."""

    @event.listens_for(session_factory, "after_commit")
    def _flush(session: Session) -> None:
        pending = session.info.pop(_KEY, [])
        for task_name, kwargs in pending:
            dispatch(task_name, kwargs)

    @event.listens_for(session_factory, "after_rollback")
    def _drop(session: Session) -> None:
        session.info.pop(_KEY, None)
