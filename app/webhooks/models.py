"""Export webhooks: one URL per project, and one delivery row per event sent to it (retried from the row)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, utcnow
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class ExportWebhook(TimestampMixin, Base):
    __tablename__ = "export_webhook"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), primary_key=True
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    # The signing secret is derived, never stored: HMAC(REAL_SECRET_KEY, project id + this random salt).
    # A new salt on creation and on each rotation, so a re-created webhook never gets an old secret back.
    secret_salt: Mapped[str] = mapped_column(String(64), nullable=False)
    secret_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookDelivery(TimestampMixin, Base):
    __tablename__ = "webhook_delivery"
    __table_args__ = (
        # One delivery per export and event: enqueueing twice is harmless.
        UniqueConstraint("export_id", "event", name="uq_webhook_delivery_export_id_event"),
        Index("ix_webhook_delivery_project_id", "project_id", "id"),
        Index("ix_webhook_delivery_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    export_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("export_run.id", ondelete="CASCADE"), nullable=False
    )
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    # The JSON body (without delivery_id, added when sent); fixed when the event happens.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=DeliveryStatus.PENDING)
    # Attempts started; each start is a compare-and-set on this count, so one attempt runs at a time.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # When the next attempt is due (pending), or until when the attempt in flight holds the delivery.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The URL of the last attempt (the project's webhook URL at that time).
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
