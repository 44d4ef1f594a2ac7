"""Webhook delivery queries: due deliveries, a project's list, and the compare-and-sets that start and finish
an attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate
from app.webhooks.models import DeliveryStatus, WebhookDelivery


def due_ids(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    """Pending deliveries whose next attempt is due, oldest due first."""
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.status == DeliveryStatus.PENDING,
                WebhookDelivery.next_attempt_at <= now,
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
    )


def start_attempt(
    session: Session, delivery_id: uuid.UUID, *, attempts: int, now: datetime, hold_until: datetime, url: str
) -> bool:
    """Count one more attempt and hold the delivery until `hold_until` (so a sweep leaves it alone while
    it is in flight), if it is still pending, due and unchanged; True if this caller holds the attempt."""
    started = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.attempts == attempts,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(attempts=attempts + 1, next_attempt_at=hold_until, last_attempt_at=now, url=url)
        .execution_options(synchronize_session=False)
    )
    return started.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def finish_attempt(session: Session, delivery_id: uuid.UUID, attempt: int, **values: Any) -> bool:
    """Record an attempt's outcome if no later attempt took the delivery over meanwhile."""
    finished = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return finished.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def page(
    session: Session,
    project_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    status: str | None,
) -> PageRows[WebhookDelivery]:
    """A page of the project's deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.project_id == project_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return paginate(session, query, WebhookDelivery.id, limit=limit, cursor=cursor, descending=True)
