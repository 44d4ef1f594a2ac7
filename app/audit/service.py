"""Record audit events in the same unit of work as the change they describe; page through them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate
from app.audit.models import AuditEvent
from app.auth.context import Caller


def record(
    session: Session,
    caller: Caller,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """Add one audit event (committed with the change, or not at all)."""
    session.add(
        AuditEvent(
            actor=caller.name,
            actor_principal_id=caller.principal_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=details,
        )
    )


def list_events(session: Session, *, limit: int, cursor: str | None) -> PageRows[AuditEvent]:
    """A page of the audit log, oldest first."""
    return paginate(session, select(AuditEvent), AuditEvent.id, limit=limit, cursor=cursor)
