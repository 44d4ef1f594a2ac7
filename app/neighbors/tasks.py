"""Neighbour tasks: index builds (compute outside any transaction) and redundant-pair marking."""

from __future__ import annotations

import uuid

from app import background
from app.db.session import get_database
from app.neighbors import redundancy, service
from app.tasks import DATABASE_ERRORS, RetryPolicy, task

# Both are idempotent and decide from the stored state when they run, so a retry is always safe. An index
# build also writes files under REAL_INDEX_DIR (often a shared volume), so an OSError is worth a retry too.
INDEX_RETRY = RetryPolicy(max_attempts=3, backoff=2, backoff_max=60, transient=(*DATABASE_ERRORS, OSError))
REDUNDANCY_RETRY = RetryPolicy(max_attempts=3, backoff=2, backoff_max=60, transient=DATABASE_ERRORS)


@task("neighbors.build_index", retry=INDEX_RETRY)
def build_index(project_id: str, force: bool = False) -> None:
    """Build and publish new index versions for a project, unless the debounce rule (app/neighbors/service.py)
    says skip."""
    pid = uuid.UUID(str(project_id))
    with get_database().session() as session:
        builds = service.plan_builds(session, pid, force=force)
    if builds is None:
        return
    # The builds run outside any transaction: no connection is held for seconds of compute.
    for plan in builds.plans:
        service.build_one(plan, project_id=pid, model=builds.model, threshold=builds.threshold)
    if builds.mark_redundant:
        background.dispatch("neighbors.mark_redundant", {"project_id": str(pid)})


@task("neighbors.mark_redundant", retry=REDUNDANCY_RETRY)
def mark_redundant(project_id: str) -> dict[str, int]:
    """Hold back the project's redundant pairs and queue again those no longer redundant. Idempotent."""
    pid = uuid.UUID(str(project_id))
    db = get_database()
    with db.session() as session:
        check = redundancy.check_project(session, pid)
    if check.plan is None:
        return {"marked": 0, "restored": check.restored}
    # The writes: a short transaction, after the reads above (which hold no locks).
    with db.session() as session:
        return redundancy.apply_plan(session, pid, check.plan)


# No retry (the default policy): the next tick, REAL_REDUNDANT_SWEEP_INTERVAL_SECONDS later, is the retry.
@task("neighbors.sweep_redundant")
def sweep_redundant() -> int:
    """Ask for ``neighbors.mark_redundant`` for every active project that skips redundant pairs."""
    with get_database().session() as session:
        project_ids = redundancy.projects_skipping_redundant(session)
    for project_id in project_ids:
        background.dispatch("neighbors.mark_redundant", {"project_id": str(project_id)})
    return len(project_ids)
