"""The audit log (admin only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.api.deps import AdminDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.audit import service

router = APIRouter(tags=["audit"])


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    actor: str
    actor_principal_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any] | None


@router.get("/audit", response_model=Page[AuditEventRead], responses=problems())
def list_audit_events(
    session: SessionDep, _caller: AdminDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[AuditEventRead]:
    """Who created or revoked keys, created or changed projects, exported what, and when (oldest first)."""
    return service.list_events(session, limit=limit, cursor=cursor).page(AuditEventRead.model_validate)
