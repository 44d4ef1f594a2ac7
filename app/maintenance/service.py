"""Periodic reconciliation: the broker is a hint, the database is the truth.

Work whose task was lost (a failed send after commit, a killed worker, a restarted embedded runner) is
found by its state in the database and sent again; every task is idempotent, so a duplicate is harmless.
The task ``maintenance.reconcile`` is in ``app/maintenance/tasks.py``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.exports.models import ExportRun, ExportStatus
from app.prompts.models import Prompt, PromptStatus
from app.queue import repository as queue_repository

MAX_PROMPTS = 10_000  # per run; the next run sends the rest


def mend_leases(session: Session, now: datetime) -> tuple[int, int]:
    """Record expired leases and mend released flags; (leases expired, flags mended)."""
    return queue_repository.mark_expired(session, now), queue_repository.reconcile_released_flags(session)


def pending_prompts(session: Session, cutoff: datetime) -> list[str]:
    """Prompts still waiting for embeddings since before ``cutoff``, oldest first."""
    query = (
        select(Prompt.id)
        .where(Prompt.status == PromptStatus.PENDING, Prompt.created_at <= cutoff)
        .order_by(Prompt.id)
        .limit(MAX_PROMPTS)
    )
    return [str(p) for p in session.scalars(query)]


def queued_exports(session: Session, cutoff: datetime) -> list[str]:
    """Exports queued since before ``cutoff`` (their send, or their retry, was lost)."""
    query = select(ExportRun.id).where(
        ExportRun.status == ExportStatus.QUEUED, ExportRun.created_at <= cutoff
    )
    return [str(e) for e in session.scalars(query)]
