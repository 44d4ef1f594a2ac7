"""Export webhook request and response bodies."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, Field

from app.schemas import Input, NoNulStr
from app.webhooks.models import DeliveryStatus


def _http_url(value: str) -> str:
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("the URL contains whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from exc
    if parts.scheme.lower() not in {"http", "https"}:
        raise ValueError("only http and https URLs are allowed")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if "@" in parts.netloc:
        # Stored and shown in plain text to every reader of the project: the Real-Signature header, not
        # the URL, is how a receiver knows the call is ours.
        raise ValueError("credentials in the URL (user:password@) are not allowed; check Real-Signature")
    return value


WebhookUrl = Annotated[NoNulStr, AfterValidator(_http_url)]


class ExportWebhookSet(Input):
    """`PUT /v1/projects/{project_id}/export-webhook`."""

    url: WebhookUrl = Field(
        min_length=1,
        max_length=2000,
        description="Where to POST `export.succeeded` events (http or https; redirects are not followed).",
    )


class ExportWebhookRead(BaseModel):
    project_id: uuid.UUID
    url: str
    secret_version: int = Field(description="Bumped by each rotation of the signing secret.")
    secret: str | None = Field(
        default=None,
        description="The signing secret (`whsec_…`): only in the answer that created the webhook or rotated "
        "the secret; keep it, it is not shown again.",
    )
    created_at: datetime
    updated_at: datetime


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID = Field(description="Also sent as the `Real-Delivery` header and `delivery_id`.")
    project_id: uuid.UUID
    export_id: uuid.UUID
    event: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(description="When a pending delivery is tried next.")
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The HTTP status of the last attempt (null: no answer).")
    last_error: str | None
    url: str | None = Field(description="The URL of the last attempt.")
    delivered_at: datetime | None
    created_at: datetime
