"""The periodic ``maintenance.reconcile`` task: find lost work in the database and send it again."""

from __future__ import annotations

import logging
from datetime import timedelta

from app import background
from app.config import get_settings
from app.db.base import utcnow
from app.db.session import get_database
from app.maintenance import service
from app.simulation import service as simulations
from app.tasks import task

log = logging.getLogger(__name__)


# No retry (the default policy): the next tick, REAL_RECONCILE_INTERVAL_SECONDS later, is the retry.
@task("maintenance.reconcile")
def reconcile(older_than_seconds: float | None = None) -> dict[str, int]:
    """Re-send embedding for prompts pending too long, exports and simulations queued too long; mark failed
    the simulations whose worker died; record expired leases. (Exports whose worker died while running are
    put back by outbox.relay, every few seconds.)"""
    settings = get_settings()
    age = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    cutoff = utcnow() - timedelta(seconds=age)
    db = get_database()
    with db.session() as session:
        expired, released_flags = service.mend_leases(session, utcnow())
    with db.session() as session:
        prompt_ids = service.pending_prompts(session, cutoff)
        export_ids = service.queued_exports(session, cutoff)
        simulation_ids = simulations.queued_before(session, cutoff)
    with db.session() as session:
        stale_simulations = simulations.fail_stale(session)
    chunk = settings.embed_chunk_prompts
    for start in range(0, len(prompt_ids), chunk):
        background.dispatch("embeddings.embed_prompts", {"prompt_ids": prompt_ids[start : start + chunk]})
    for export_id in export_ids:
        background.dispatch("exports.run_export", {"export_id": export_id})
    for simulation_id in simulation_ids:
        background.dispatch(simulations.TASK, {"simulation_id": simulation_id})
    if stale_simulations:
        log.warning("simulations.stale_failed", extra={"count": stale_simulations})
    if expired:
        log.info("queue.leases_expired", extra={"count": expired})
    if prompt_ids or export_ids:
        log.info("maintenance.reconciled", extra={"prompts": len(prompt_ids), "exports": len(export_ids)})
    if released_flags:
        log.info("queue.released_flags_mended", extra={"count": released_flags})
    return {
        "prompts": len(prompt_ids),
        "exports": len(export_ids),
        "simulations": len(simulation_ids),
        "stale_simulations": stale_simulations,
        "expired_leases": expired,
        "released_flags": released_flags,
    }
