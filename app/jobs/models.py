"""Jobs: long work a client can follow (ingest → embed → pair)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class JobKind(StrEnum):
    INGEST = "ingest"
    RESELECT = "reselect"
    UPLOAD = "upload"  # a streamed JSONL file (POST /v1/projects/{id}/prompts:upload): ingest, line by line


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(TimestampMixin, Base):
    __tablename__ = "job"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("project.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Upload jobs only: lines read, duplicates and lines refused so far (``total`` counts the prompts stored),
    # and when the last line was read (null while the file streams in, or after it broke off: see ``error``).
    lines: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duplicates: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_lines: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class JobError(Base):
    """A line of an upload that was not stored, and why (nothing of it was stored)."""

    __tablename__ = "job_error"
    __table_args__ = (Index("ix_job_error_job_line", "job_id", "line"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), nullable=False)
    line: Mapped[int] = mapped_column(BigInteger, nullable=False)
    external_id: Mapped[str | None] = mapped_column(String(512), nullable=True)
    field: Mapped[str | None] = mapped_column(String(512), nullable=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
