"""The outbox relay in the beat process (production): a thread that runs ``outbox.relay`` every
``REAL_OUTBOX_RELAY_INTERVAL_SECONDS``.

Not a scheduled Celery task: sent to the workers, it would wait behind long tasks in a busy pool (embedding
chunks run for tens of seconds), and recovery would wait with it. Beat is one idle process that is always up
where schedules matter; two relays (a second beat) are safe, since each takes its rows with SKIP LOCKED.
"""

from __future__ import annotations

import logging
import threading

from app.config import get_settings

log = logging.getLogger(__name__)


def start_relay_thread(stop: threading.Event | None = None) -> threading.Thread:
    """Start the relay loop in a daemon thread; it runs until ``stop`` is set or the process exits."""
    from app.outbox.tasks import relay

    interval = get_settings().outbox_relay_interval_seconds
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                relay()
            except Exception:
                # The database or the broker is away: the next tick tries again.
                log.warning("outbox.relay_failed", exc_info=True)

    thread = threading.Thread(target=loop, name="outbox-relay", daemon=True)
    thread.start()
    return thread
