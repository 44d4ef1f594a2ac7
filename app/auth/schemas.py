"""Key management bodies."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from app.auth.models import Role
from app.schemas import Input, NoNulStr


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
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (UTC offset)."
    )


class PrincipalRead(BaseModel):
    id: uuid.UUID
    name: str
    role: Role
    projects: list[uuid.UUID]


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
    key_id: uuid.UUID | None
