"""Webhook tasks: one delivery attempt (take it, POST outside any transaction, record it), and the sweep.

Neither retries as a task (the default policy). A delivery's retries are its own: each attempt is counted
on its row with its backoff, and the sweep re-sends the due ones, so they survive worker restarts; a task
retry would add attempts the row does not count. A database error before the attempt is taken leaves the
delivery due, and one after it leaves it held until its hold expires: the sweep sends it again either way.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from app import background
from app.db.base import utcnow
from app.db.session import get_database
from app.tasks import task
from app.webhooks import service


@task("webhooks.deliver")
def deliver(delivery_id: str, now: datetime | None = None) -> str:
    """Make one attempt at a pending delivery that is due; its status afterwards.

    `now` is for tests; it also dates the signature.
    """
    db = get_database()
    did = uuid.UUID(delivery_id)
    started = now or utcnow()
    with db.session() as session:
        attempting = service.start_attempt(session, did, started)
    if isinstance(attempting, str):
        return attempting
    outcome = service.send(attempting, did, started)
    with db.session() as session:
        return service.finish_attempt(session, did, attempting.attempt, outcome, now or utcnow())


@task("webhooks.sweep")
def sweep(now: datetime | None = None, limit: int = 500) -> list[str]:
    """Send a delivery task for every pending delivery that is due; the ids sent."""
    with get_database().session() as session:
        due = service.due_deliveries(session, now or utcnow(), limit)
    for delivery_id in due:
        background.dispatch("webhooks.deliver", {"delivery_id": delivery_id})
    return due
