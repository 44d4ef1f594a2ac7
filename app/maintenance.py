"""Periodic reconciliation: the broker is a hint, the database is the truth.

Work whose task was lost (a failed send after commit, a killed worker, a restarted embedded runner) is
found by its state in the database and sent again; every task is idempotent, so a duplicate is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from app import background
from app.config import get_settings
from app.db.base import utcnow
from app.db.session import get_database
from app.exports import service as exports
from app.exports.models import ExportRun, ExportStatus
from app.prompts.models import Prompt, PromptStatus
from app.queue import repository as queue_repository

log = logging.getLogger(__name__)


def reconcile(older_than_seconds: float | None = None) -> dict[str, int]:
    """Re-send embedding for prompts pending too long, exports queued too long and exports whose worker
    died while running (stale heartbeat); record expired leases."""
    settings = get_settings()
    age = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    cutoff = utcnow() - timedelta(seconds=age)
    with get_database().session() as session:
        expired = queue_repository.mark_expired(session, utcnow())
        released_flags = queue_repository.reconcile_released_flags(session)
    with get_database().session() as session:
        prompt_ids = [
            str(p)
            for p in session.scalars(
                select(Prompt.id)
                .where(Prompt.status == PromptStatus.PENDING, Prompt.created_at <= cutoff)
                .order_by(Prompt.id)
                .limit(10_000)
            )
        ]
        export_ids = [
            str(e)
            for e in session.scalars(
                select(ExportRun.id).where(
                    ExportRun.status == ExportStatus.QUEUED, ExportRun.created_at <= cutoff
                )
            )
        ]
    # Running exports whose worker stopped heartbeating go back to queued (compare-and-set) and are re-sent.
    export_ids += exports.requeue_stale()
    chunk = settings.embed_chunk_prompts
    for start in range(0, len(prompt_ids), chunk):
        background.dispatch("embeddings.embed_prompts", {"prompt_ids": prompt_ids[start : start + chunk]})
    for export_id in export_ids:
        background.dispatch("exports.run_export", {"export_id": export_id})
    if expired:
        log.info("queue.leases_expired", extra={"count": expired})
    if prompt_ids or export_ids:
        log.info("maintenance.reconciled", extra={"prompts": len(prompt_ids), "exports": len(export_ids)})
    if released_flags:
        log.info("queue.released_flags_mended", extra={"count": released_flags})
    return {
        "prompts": len(prompt_ids),
        "exports": len(export_ids),
        "expired_leases": expired,
        "released_flags": released_flags,
    }
