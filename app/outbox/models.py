"""The task outbox: one row per task sent after a commit, from the unit of work that asked for it until the
task has run (app/outbox/service.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class TaskOutbox(Base):
    __tablename__ = "task_outbox"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    task: Mapped[str] = mapped_column(String(100), nullable=False)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # When the message was (last) handed to the broker; null: the send failed, the relay sends it. A
    # retry waiting for its backoff has it set to when the retry is due.
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The run that holds the task: its token, and its last sign of life (null: no run holds it).
    run_token: Mapped[uuid.UUID | None] = mapped_column(Uuid(), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    resends: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # The sender's log context (request id, project: app/logging.task_headers), so a resent task's log lines
    # still name the request that asked for it; null when there was none.
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
