"""Key management bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.auth.models import Role
from app.schemas import Input, IsoDateTime, NoNulStr


class KeyCreate(Input):
    role: Role
    name: NoNulStr = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$",
        description="The principal's name (letters, digits and . _ @ + -).",
    )
    projects: list[uuid.UUID] | None = Field(
        default=None, max_length=1000, description="Projects the principal may work on (replaces its list)."
    )
    expires_at: IsoDateTime | None = Field(
        default=None, description="When the key stops working (UTC offset)."
    )
    reviewer: bool | None = Field(
        default=None,
        description="May work the review queue of its projects (for annotators). "
        "Null: false for a new principal, unchanged for an existing one.",
    )


class PrincipalUpdate(Input):
    reviewer: bool | None = Field(
        default=None, description="May work the review queue of its projects (for annotators)."
    )


class PrincipalRead(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    projects: list[uuid.UUID]
    reviewer: bool


class KeyRead(BaseModel):
    id: uuid.UUID
    prefix: str
    principal: PrincipalRead
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The secret. It is shown only in this response; store it now.")


class MeRead(BaseModel):
    name: str
    role: Role
    projects: list[uuid.UUID]
    reviewer: bool
    key_id: uuid.UUID | None


class MyProjectRead(BaseModel):
    """A project as the people who work on it see it (no budget or selection settings)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    instructions: str
    lease_ttl_seconds: int
    gold_rate: float


class SessionCreate(Input):
    key: NoNulStr = Field(min_length=1, max_length=200, description="Your API key.")


class SessionRead(BaseModel):
    name: str
    role: Role
    projects: list[uuid.UUID]
    reviewer: bool
    key_id: uuid.UUID
    expires_at: datetime = Field(description="When the session cookie stops working (sign in again then).")
    csrf_token: str = Field(
        description="Send it as `X-CSRF-Token` with every state-changing request made with the cookie "
        "(also readable from the `real_csrf` cookie)."
    )
