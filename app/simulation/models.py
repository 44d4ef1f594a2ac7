"""Simulation jobs (``POST /v1/simulations``): one budget simulation each, its input and report stored."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin
from app.db.ids import uuid7
from app.db.types import UTCDateTime


class SimulationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class SimulationPhase(StrEnum):
    """What a running simulation is doing: ``done`` / ``total`` count texts, then strategy × repeat runs."""

    EMBEDDING = "embedding"
    SIMULATING = "simulating"
    WRITING = "writing"


class Simulation(TimestampMixin, Base):
    __tablename__ = "simulation"
    __table_args__ = (Index("ix_simulation_created_by_principal_id", "created_by_principal_id", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True, default=uuid7)
    # The principal that asked for it (null for the bootstrap admin): it and admins may see it.
    created_by_principal_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("principal.id", ondelete="SET NULL"), nullable=True
    )
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    # The request's parameters, every default filled in (SimulationParameters).
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    embedding_model: Mapped[str] = mapped_column(String(500), nullable=False)
    # The uploaded file as sent (JSONL, or gzipped JSONL): its name, sha256, size and what it holds.
    input_name: Mapped[str] = mapped_column(String(200), nullable=False)
    input_file: Mapped[str] = mapped_column(String(32), nullable=False)
    input_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    input_bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    input_format: Mapped[str] = mapped_column(String(16), nullable=False)
    prompts: Mapped[int] = mapped_column(Integer, nullable=False)
    responses: Mapped[int] = mapped_column(Integer, nullable=False)
    # The folder (a path or an fsspec URL under the export storage) holding the input and the report.
    location: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=SimulationStatus.QUEUED)
    phase: Mapped[str | None] = mapped_column(String(16), nullable=True)
    done: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Each take-over of the job bumps this fencing token; a worker that lost the job stops writing.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Written by the worker while it runs (progress and a timer): a running job whose heartbeat is older
    # than REAL_SIMULATION_STALE_AFTER_SECONDS lost its worker and is marked failed.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The report's files once succeeded: [{name, media_type, bytes, sha256}].
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
