"""Principals (who) and their API keys (how they prove it); keys are stored only as HMAC hashes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class Role(StrEnum):
    ADMIN = "admin"
    DATA_TEAM = "data_team"
    ANNOTATOR = "annotator"


class Principal(TimestampMixin, Base):
    """An identity with a role; rotating its keys keeps its history and stats."""

    __tablename__ = "principal"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    # Project ids this principal may work on (null = none beyond the projects it created).
    projects: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # May work the review queue of its projects (annotators; admins and data teams may anyway).
    reviewer: Mapped[bool] = mapped_column(nullable=False, default=False)


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_key"
    __table_args__ = (Index("ix_api_key_principal", "principal_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    principal_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("principal.id", ondelete="CASCADE"), nullable=False
    )
    # The first characters of the key, to recognise it in a list; never enough to use it.
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    # HMAC-SHA256 of the whole key under REAL_SECRET_KEY, hex.
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def details(self) -> dict[str, Any]:
        """What an audit entry records about the key (never the secret)."""
        return {"prefix": self.prefix, "principal_id": str(self.principal_id)}
