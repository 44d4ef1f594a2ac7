"""Arrange labels and reviews at chosen instants, run exports synchronously, read their files."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.context import BOOTSTRAP_ADMIN
from app.exports import service, storage, tasks
from app.exports.models import ExportRun
from app.exports.schemas import ExportRequest
from app.pairs.models import Pair, PairReview, PairSlot
from app.projects.models import Project
from app.queue.models import Assignment, AssignmentStatus, Label

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus some minutes: every test instant is in the past and easy to read."""
    return T0 + timedelta(minutes=minutes)


def label(
    session: Session, pair: Pair, annotator: str, choice: str, when: datetime, *, b_first: bool = False
) -> Label:
    """A label in pair terms ("a" = response_a won), submitted at `when` (response_a shown first); with
    ``b_first`` response_b was shown first and ``choice`` is in screen terms ("a" = the one shown first)."""
    slot = session.scalars(select(PairSlot).where(PairSlot.pair_id == pair.id).limit(1)).one()
    first, second = (
        (pair.response_b_id, pair.response_a_id) if b_first else (pair.response_a_id, pair.response_b_id)
    )
    assignment = Assignment(
        project_id=pair.project_id,
        pair_id=pair.id,
        slot_id=slot.id,
        annotator=annotator,
        shown_first_response_id=first,
        shown_second_response_id=second,
        status=AssignmentStatus.LABELED,
        lease_expires_at=when + timedelta(minutes=10),
        ended_at=when,
        created_at=when - timedelta(seconds=30),
    )
    session.add(assignment)
    session.flush()
    row = Label(
        assignment_id=assignment.id,
        project_id=pair.project_id,
        pair_id=pair.id,
        annotator=annotator,
        choice=choice,
        shown_first_response_id=first,
        labeled_at=when,
        request_sha256="0" * 64,
        created_at=when,
    )
    session.add(row)
    session.flush()
    return row


def review(session: Session, pair: Pair, verdict: str, when: datetime) -> None:
    """A reviewer's verdict made at `when` (and copied to the live column, as the service does)."""
    session.add(PairReview(pair_id=pair.id, reviewer="rev", verdict=verdict, created_at=when))
    pair.review_verdict = verdict
    session.flush()


def run_export(db: Any, project_id: uuid.UUID, **request: Any) -> ExportRun:
    """Create an export as the bootstrap admin, run it here, and return the finished run."""
    with db.session() as session:
        project = session.get_one(Project, project_id)
        run = service.create(session, BOOTSTRAP_ADMIN, project, ExportRequest(**request))
        export_id = run.id
    tasks.run_export(str(export_id))
    with db.session() as session:
        return session.get_one(ExportRun, export_id)


def data_bytes(run: ExportRun) -> bytes:
    location, name = service.data_file(run)
    return storage.read_bytes(location, name)


def data_path(run: ExportRun) -> Path:
    location, name = service.data_file(run)
    local = storage.local_path(location, name)
    assert local is not None
    return Path(local)


def manifest(run: ExportRun) -> dict[str, Any]:
    import json

    return dict(json.loads(service.manifest_bytes(run)))
