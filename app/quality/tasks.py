"""Quality tasks: aggregate a project (read, then a short write), and the periodic sweep of stale ones."""

from __future__ import annotations

import logging
import uuid

from app.active import service as active
from app.db.session import get_database
from app.quality import repository, service
from app.tasks import DATABASE_ERRORS, RetryPolicy, task

log = logging.getLogger(__name__)


# Recomputed from the labels each time, so a retry after a database error is always safe.
@task(
    service.AGGREGATE_TASK,
    retry=RetryPolicy(max_attempts=3, backoff=2, backoff_max=60, transient=DATABASE_ERRORS),
)
def aggregate_project(project_id: str, force: bool = False) -> bool:
    """Aggregate one project unless its snapshot is current (or forced); True if it stored new aggregates.

    Reads and computes in a read-only unit of work, then writes in a short one: on SQLite a write
    transaction holds the database's single write lock, which every claim and label waits for.
    """
    pid = uuid.UUID(str(project_id))
    database = get_database()
    with database.read_session() as session:
        computed = service.compute_if_stale(session, pid, force=force)
    if computed is None:
        return False
    with database.session() as session:
        stored = service.store_if_present(session, pid, computed)
        if stored is None:
            return False
        labels = stored.labels_count_at_compute
        # New decided pairs may be due a reward-model refit (sent after this commit).
        active.schedule_refit_if_due(session, pid, computed.decided_pairs)
    log.info("quality.aggregated", extra={"project_id": str(pid), "labels": labels})
    return True


# No retry (the default policy): the next tick, REAL_QUALITY_AGGREGATE_INTERVAL_SECONDS later, is the retry.
@task("quality.aggregate_stale")
def aggregate_stale() -> int:
    """Ask for an aggregation of every stale project."""
    with get_database().read_session() as session:  # a scan of every label: no write lock on SQLite
        stale = repository.stale_projects(session)
    # The same window as the label-triggered sends: a project aggregating right now is not asked again.
    sent = sum(service.schedule_aggregate_now(project_id) for project_id in stale)
    if sent:
        log.info("quality.stale_scheduled", extra={"projects": sent})
    return sent
