"""The periodic ``outbox.relay`` task: send again the tasks a commit asked for that are due (failed sends,
dead runs, lost messages), and put back exports whose worker stopped heartbeating."""

from __future__ import annotations

import logging

from app import background
from app.config import get_settings
from app.db.base import utcnow
from app.db.session import get_database
from app.exports import service as exports
from app.outbox import service
from app.tasks import task

log = logging.getLogger(__name__)


# No retry: the next tick, REAL_OUTBOX_RELAY_INTERVAL_SECONDS later, is the retry.
@task(service.RELAY_TASK)
def relay() -> dict[str, int]:
    """Send the due outbox rows again (marked sent in one unit of work, sent after its commit)."""
    db = get_database()
    embedded = get_settings().embedded_tasks
    with db.session() as session:
        resends = service.due(
            session,
            utcnow(),
            queue_empty=background.queue_is_empty,
            # The embedded runner is asked per task name; a broker per queue.
            queue_of=(lambda name: name) if embedded else background.queue_for,
        )
        # Running exports whose worker stopped heartbeating go back to queued (compare-and-set); their
        # task is sent again through the outbox, after this commit.
        exports.requeue_stale_and_send(session)
    counts = {"unsent": 0, "stale": 0, "lost": 0, "failed": 0}
    for resend in resends:
        with service.sent_as(resend):  # the message names the request that first asked for it
            sent = background.dispatch(resend.task, service.message(resend.row_id, resend.kwargs))
        if sent:
            counts[resend.why] += 1
        else:
            counts["failed"] += 1
            service.mark_unsent(db.session_factory, str(resend.row_id))
    if resends:
        log.info("outbox.relayed", extra=counts)
    return counts
