"""Prompts and their candidate responses, as ingested."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.prompts.text import prompt_text_sha256


class PromptStatus(StrEnum):
    PENDING = "pending"  # waiting for its responses' embeddings
    PAIRED = "paired"
    UNPAIRABLE = "unpairable"  # fewer than two distinct non-empty responses


class Prompt(TimestampMixin, Base):
    __tablename__ = "prompt"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        Index("ix_prompt_project_status", "project_id", "status"),
        Index("ix_prompt_job", "job_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"), nullable=True)
    external_id: Mapped[str] = mapped_column(String(512), nullable=False)
    # A string, or a list of {role, content} messages, exactly as ingested.
    prompt: Mapped[Any] = mapped_column(JSON, nullable=False)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    content_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # sha256 of the prompt as one text (app/prompts/text.py): its vector's key, as for responses. Filled on
    # insert when not given; nullable only for rows written around the ORM.
    text_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PromptStatus.PENDING)

    responses: Mapped[list[Response]] = relationship(
        back_populates="prompt", order_by="Response.position", cascade="all, delete-orphan"
    )


@event.listens_for(Prompt, "before_insert")
def _fill_text_sha256(_mapper: object, _connection: object, target: Prompt) -> None:
    if target.text_sha256 is None:
        target.text_sha256 = prompt_text_sha256(target.prompt)


class Response(TimestampMixin, Base):
    __tablename__ = "response"
    __table_args__ = (
        UniqueConstraint("prompt_id", "position"),
        # Equality lookups only (which responses have these texts); on Postgres a hash index: a btree on
        # 64 hex characters in random order cost an upload more than the rows themselves (docs/benchmarks.md).
        Index("ix_response_text_sha256", "text_sha256", postgresql_using="hash"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    prompt_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("prompt.id", ondelete="CASCADE"), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    model: Mapped[str | None] = mapped_column(String(256), nullable=True)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    text_sha256: Mapped[str] = mapped_column(String(64), nullable=False)

    prompt: Mapped[Prompt] = relationship(back_populates="responses")
