"""DPO export: TRL's prompt/chosen/rejected, one line per pair with a winner, as of a snapshot."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from app.audit import service as audit
from app.auth.context import Caller
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.db.session import get_database
from app.errors import Conflict, NotFound
from app.exports.models import ExportRun, ExportStatus
from app.pairs.models import Pair
from app.projects import service as projects
from app.projects.models import Project
from app.prompts.models import Prompt, Response
from app.queue.models import Label

log = logging.getLogger(__name__)

FORMATS = ("jsonl",)


def create(session: Session, caller: Caller, project: Project, fmt: str) -> ExportRun:
    """Queue an export of the project's labels as of now."""
    run = ExportRun(project_id=project.id, format=fmt, status=ExportStatus.QUEUED, snapshot_at=utcnow())
    session.add(run)
    session.flush()
    audit.record(
        session, caller, "export.created", "export", run.id, {"project_id": str(project.id), "format": fmt}
    )
    send_after_commit(session, "exports.run_export", export_id=str(run.id))
    return run


def get(session: Session, caller: Caller, export_id: uuid.UUID) -> ExportRun:
    """An export run of a project the caller may see, or 404."""
    run = session.get(ExportRun, export_id)
    if run is None or not projects.can_see(caller, session.get_one(Project, run.project_id)):
        raise NotFound(f"no export {export_id}")
    return run


def file_path(run: ExportRun) -> Path:
    """Where a succeeded export's file lies; 409 while it is not ready."""
    if run.status != ExportStatus.SUCCEEDED or not run.path:
        raise Conflict(f"export {run.id} is {run.status}, not succeeded")
    return Path(run.path)


def prompt_text(prompt: Any) -> str:
    """TRL's standard format wants a string prompt; chat messages become a role-tagged transcript."""
    if isinstance(prompt, str):
        return prompt
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)


def winner_of(labels: list[tuple[str, uuid.UUID | None]]) -> uuid.UUID | None:
    """The response with strictly more votes than the other and than tie/both_bad votes together."""
    votes = Counter(w for _, w in labels if w is not None)
    abstain = sum(1 for _, w in labels if w is None)
    ranked = votes.most_common()
    if not ranked:
        return None
    best, count = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    return best if count > runner_up and count > abstain else None


def _rows(session: Session, run: ExportRun) -> Iterator[dict[str, Any]]:
    ra, rb = aliased(Response), aliased(Response)
    query = (
        select(
            Pair.id,
            Pair.similarity,
            Prompt.external_id,
            Prompt.prompt,
            ra,
            rb,
            Label.choice,
            Label.winner_response_id,
            Pair.review_verdict,
        )
        .join(Label, Label.pair_id == Pair.id)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(Pair.project_id == run.project_id, Label.labeled_at <= run.snapshot_at)
        .where(Pair.gold_answer.is_(None))  # gold pairs are checks on annotators, not training data
        .order_by(Pair.id, Label.id)
        .execution_options(yield_per=500)
    )
    current: uuid.UUID | None = None
    group: list[Any] = []
    for row in session.execute(query):
        if row[0] != current and group:
            line = _line(group)
            if line:
                yield line
            group = []
        current = row[0]
        group.append(row)
    if group:
        line = _line(group)
        if line:
            yield line


def _line(group: list[Any]) -> dict[str, Any] | None:
    pair_id, similarity, external_id, prompt, a, b = group[0][:6]
    verdict = group[0][8]
    if verdict is not None:  # a reviewer's verdict overrides the labels
        winner = {"a": a.id, "b": b.id}.get(verdict)
    else:
        winner = winner_of([(row[6], row[7]) for row in group])
    if winner is None:
        return None
    chosen, rejected = (a, b) if winner == a.id else (b, a)
    return {
        "prompt": prompt_text(prompt),
        "chosen": chosen.text,
        "rejected": rejected.text,
        "prompt_external_id": external_id,
        "pair_id": str(pair_id),
        "similarity": similarity,
        "chosen_model": chosen.model,
        "rejected_model": rejected.model,
    }


def run_export(export_id: str) -> None:
    """Write the export file atomically, record rows and sha256. A finished export is never rewritten."""
    db = get_database()
    with db.session() as session:
        # Compare-and-set: of two deliveries of this task (a retry, the reconciler), one writes the file.
        taken = session.execute(
            update(ExportRun)
            .where(ExportRun.id == uuid.UUID(export_id), ExportRun.status == ExportStatus.QUEUED)
            .values(status=ExportStatus.RUNNING)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return
    try:
        with db.session() as session:
            run = session.get_one(ExportRun, uuid.UUID(export_id))
            target = get_settings().export_dir / str(run.project_id) / f"{run.id}.{run.format}"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(f"{target.suffix}.{uuid.uuid4().hex}.part")
            digest = hashlib.sha256()
            rows = 0
            with tmp.open("wb") as handle:
                for line in _rows(session, run):
                    data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
                    handle.write(data)
                    digest.update(data)
                    rows += 1
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(target)
            run.rows, run.sha256, run.path = rows, digest.hexdigest(), str(target.resolve())
            run.status, run.finished_at = ExportStatus.SUCCEEDED, utcnow()
        log.info("exports.finished", extra={"export_id": export_id, "rows": rows})
    except Exception as exc:
        with db.session() as session:
            failed = session.get_one(ExportRun, uuid.UUID(export_id))
            failed.status, failed.error, failed.finished_at = ExportStatus.FAILED, repr(exc)[:2000], utcnow()
        raise
