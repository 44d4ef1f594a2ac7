"""Ingest: idempotent by external_id, all-or-nothing per batch, embedding sent after commit."""

from __future__ import annotations

import hashlib
import json
import json.encoder
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Row, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.api.pagination import Page, paginate_rows
from app.config import get_settings
from app.db.after_commit import send_many_after_commit
from app.db.base import utcnow
from app.db.ids import uuid7
from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.errors import Conflict, NotFound
from app.jobs.models import Job, JobKind
from app.labels import repository as labels
from app.labels.schemas import OutcomeRead
from app.pairs.models import Pair
from app.pairs.schemas import RedundantWith
from app.projects.models import Project
from app.prompts import repository
from app.prompts.models import Prompt, PromptStatus, Response
from app.prompts.schemas import (
    Collapsed,
    IngestConflict,
    IngestRequest,
    IngestResult,
    PromptItem,
    PromptPair,
    PromptRead,
    PromptSummary,
    ResponseRead,
)
from app.prompts.text import prompt_text_sha256
from app.queue.models import Label
from app.selection.service import collapsed_responses
from app.selection.strategies import cosine_matrix


def text_sha256(text: str) -> str:
    """The key a response's vector is stored under (with the model name)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prompt_value(item: PromptItem) -> Any:
    return item.prompt if isinstance(item.prompt, str) else [m.model_dump() for m in item.prompt]


def _responses(item: PromptItem) -> list[dict[str, Any]]:
    """Every response as ``ResponseIn(...).model_dump()`` gives it, without building the models."""
    return [
        {"text": r, "external_id": None, "model": None}
        if isinstance(r, str)
        else {"text": r.text, "external_id": r.external_id, "model": r.model}
        for r in item.responses
    ]


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The fingerprint is sha256 of ``json.dumps({"prompt", "responses", "metadata"}, sort_keys=True,
# separators=(",", ":"), ensure_ascii=False)``; these write the same text without building that dict or a
# JSONEncoder per item (json.dumps with options builds one each call). The values must never change: a
# re-ingest compares them with fingerprints stored by earlier versions (tests/prompts/test_fingerprint.py).
_quote: Any = json.encoder.encode_basestring  # a string as json.dumps(ensure_ascii=False) writes it
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_sorted_encoder: Any = (
    _c_make_encoder(None, _no_default, _quote, None, ":", ",", True, False, True)
    if _c_make_encoder is not None
    else None  # not CPython: json.dumps's own way
)


def _canonical(value: Any) -> str:
    """json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)."""
    if _sorted_encoder is None:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "".join(_sorted_encoder(value, 0))


def _fingerprint(prompt: Any, responses: list[dict[str, Any]], metadata: dict[str, Any] | None) -> str:
    prompt_json = _quote(prompt) if isinstance(prompt, str) else _canonical(prompt)
    responses_json = ",".join(
        [
            '{"external_id":'
            + ("null" if r["external_id"] is None else _quote(r["external_id"]))
            + ',"model":'
            + ("null" if r["model"] is None else _quote(r["model"]))
            + ',"text":'
            + _quote(r["text"])
            + "}"
            for r in responses
        ]
    )
    blob = (
        '{"metadata":'
        + ("null" if metadata is None else _canonical(metadata))
        + ',"prompt":'
        + prompt_json
        + ',"responses":['
        + responses_json
        + "]}"
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def content_sha256(item: PromptItem) -> str:
    """A fingerprint of everything an item carries, to tell a retry (same) from a conflict (different)."""
    return _fingerprint(_prompt_value(item), _responses(item), item.metadata)


CONFLICT_DETAIL = "external_id already holds different content; nothing was changed"


@dataclass(slots=True)
class Incoming:
    """An item on its way in: what is stored and its fingerprint."""

    index: int  # its place in the request, or its line in an upload
    item: PromptItem
    prompt: Any
    responses: list[dict[str, Any]]
    fingerprint: str


def incoming(index: int, item: PromptItem) -> Incoming:
    prompt, responses = _prompt_value(item), _responses(item)
    return Incoming(index, item, prompt, responses, _fingerprint(prompt, responses, item.metadata))


@dataclass
class _Sorted:
    new: list[Incoming] = field(default_factory=list)
    duplicates: int = 0
    conflicts: list[Incoming] = field(default_factory=list)


def _classify(session: Session, project_id: uuid.UUID, items: list[Incoming]) -> _Sorted:
    """New, duplicate (same content under a stored or earlier external id) or conflict (other content)."""
    stored = repository.stored_fingerprints(session, project_id, list({i.item.external_id for i in items}))
    return _sort(items, stored)


def _sort(items: list[Incoming], stored: dict[str, str]) -> _Sorted:
    """``_classify`` against the fingerprints in ``stored`` (external_id → content_sha256), which the
    items' own are added to: a later line with an earlier one's external id is a duplicate or a conflict."""
    out = _Sorted()
    for entry in items:
        known = stored.get(entry.item.external_id)
        if known is None:
            stored[entry.item.external_id] = entry.fingerprint
            out.new.append(entry)
        elif known == entry.fingerprint:
            out.duplicates += 1
        else:
            out.conflicts.append(entry)
    return out


def _rows(new: list[Incoming]) -> repository.NewPrompts:
    rows = repository.NewPrompts()
    for entry in new:
        rows.add(
            entry.item.external_id,
            entry.prompt,
            entry.item.metadata,
            entry.fingerprint,
            prompt_text_sha256(entry.prompt),
            entry.responses,
        )
    return rows


def _send_embedding(session: Session, prompt_ids: list[str]) -> None:
    """Embedding is asked for, a chunk of prompts per task, after the commit."""
    chunk_size = get_settings().embed_chunk_prompts
    send_many_after_commit(
        session,
        "embeddings.embed_prompts",
        [
            {"prompt_ids": prompt_ids[start : start + chunk_size]}
            for start in range(0, len(prompt_ids), chunk_size)
        ],
    )


def _store(session: Session, project_id: uuid.UUID, job_id: uuid.UUID, new: list[Incoming]) -> list[Incoming]:
    """Insert the new prompts and their responses; those another transaction stored meanwhile are returned
    (not stored here)."""
    rows = _rows(new)
    inserted = repository.insert_new(session, project_id, job_id, rows, utcnow())
    prompt_ids = rows.ids[: len(rows)]
    _send_embedding(session, [i for i in prompt_ids if i in inserted])
    return [entry for entry, i in zip(new, prompt_ids, strict=True) if i not in inserted]


def _new_job(
    session: Session, project_id: uuid.UUID, kind: JobKind, total: int, **counters: int
) -> uuid.UUID:
    job_id = uuid7()
    session.execute(
        insert(Job).values(
            id=job_id, project_id=project_id, kind=kind.value, total=total, created_at=utcnow(), **counters
        )
    )
    return job_id


@dataclass
class Stored:
    accepted: int
    duplicates: int
    conflicts: list[Incoming]


@dataclass
class Fresh:
    """A batch ready to be COPYed straight in (``store_items``), built outside its transaction."""

    sorted_: _Sorted
    rows: repository.NewPrompts
    copy: repository.CopyText


def fresh_batch(project_id: uuid.UUID, job_id: uuid.UUID, items: list[Incoming]) -> Fresh:
    """The batch's lines compared with each other only (as if nothing were stored) and its rows in COPY
    form: plain Python, so an upload builds it while the batch before is stored."""
    sorted_ = _sort(items, {})
    rows = _rows(sorted_.new)
    return Fresh(sorted_, rows, repository.copy_text(project_id, job_id, rows, utcnow()))


def store_items(
    session: Session,
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    items: list[Incoming],
    *,
    fresh: bool = False,
    built: Fresh | None = None,
) -> Stored:
    """Classify and store items under a job that exists (an upload's batch): what went in, the duplicates,
    and the conflicts. Items another transaction stored meanwhile are classified again, against it.

    ``fresh``: the caller expects none of the external ids to be stored (an upload whose batches so far
    found none). On Postgres the batch is then COPYed straight into its tables (``built``, or built now:
    ``fresh_batch``), in a savepoint, with no lookup first; if one is stored after all (a unique
    violation), the savepoint is rolled back and the batch takes the usual path: look up, then insert."""
    if fresh and session.get_bind().dialect.name == "postgresql":
        from psycopg.errors import UniqueViolation

        batch = built if built is not None else fresh_batch(project_id, job_id, items)
        try:
            with session.begin_nested():
                repository.copy_new(session, batch.copy)
        except UniqueViolation:
            pass  # stored meanwhile, or a file sent again: classify against what is stored
        else:
            _send_embedding(session, batch.rows.ids[: len(batch.rows)])
            return Stored(len(batch.sorted_.new), batch.sorted_.duplicates, batch.sorted_.conflicts)
    result = Stored(accepted=0, duplicates=0, conflicts=[])
    for _attempt in range(3):
        sorted_ = _classify(session, project_id, items)
        result.duplicates += sorted_.duplicates
        result.conflicts += sorted_.conflicts
        items = _store(session, project_id, job_id, sorted_.new) if sorted_.new else []
        result.accepted += len(sorted_.new) - len(items)
        if not items:
            return result
    raise Conflict("concurrent ingests of the same external ids kept colliding; retry the upload")


class _Collided(Exception):
    """Another transaction stored one of these external ids after they were classified."""


def ingest(session: Session, project: Project, body: IngestRequest) -> IngestResult:
    """Store new prompts, count retries, report conflicts; concurrent duplicates are retried."""
    for _attempt in range(3):
        try:
            with session.begin_nested():
                return _ingest_once(session, project, body)
        except (IntegrityError, _Collided):
            continue  # another request stored one of these external ids meanwhile; classify again
    raise Conflict("concurrent ingests of the same external ids kept colliding; retry the request")


def _ingest_once(session: Session, project: Project, body: IngestRequest) -> IngestResult:
    sorted_ = _classify(session, project.id, [incoming(n, item) for n, item in enumerate(body.items)])
    conflicts = [
        IngestConflict(index=c.index, external_id=c.item.external_id, detail=CONFLICT_DETAIL)
        for c in sorted_.conflicts
    ]
    if not sorted_.new:
        return IngestResult(accepted=0, duplicates=sorted_.duplicates, conflicts=conflicts, job_id=None)
    job_id = _new_job(session, project.id, JobKind.INGEST, len(sorted_.new))
    if _store(session, project.id, job_id, sorted_.new):
        raise _Collided
    return IngestResult(
        accepted=len(sorted_.new), duplicates=sorted_.duplicates, conflicts=conflicts, job_id=job_id
    )


def get_prompt(
    session: Session, project: Project, *, prompt_id: uuid.UUID | None = None, external_id: str | None = None
) -> Prompt:
    """One prompt of the project, with its responses, or 404."""
    query = select(Prompt).where(Prompt.project_id == project.id).options(selectinload(Prompt.responses))
    if prompt_id is not None:
        query = query.where(Prompt.id == prompt_id)
    else:
        query = query.where(Prompt.external_id == external_id)
    prompt = session.scalars(query).first()
    if prompt is None:
        raise NotFound(f"no prompt {prompt_id or external_id!r} in project {project.id}")
    return prompt


def read_prompt(session: Session, project: Project, prompt: Prompt) -> PromptRead:
    """The API view of a prompt: responses, their similarity matrix, what was collapsed, and the pairs."""
    vectors = embedding_repository.vectors_for(
        session, project.embedding_model, [r.text_sha256 for r in prompt.responses]
    )
    responses = sorted(prompt.responses, key=lambda r: r.position)
    matrix = _similarity_matrix(responses, vectors)
    pairs = session.scalars(
        select(Pair).where(Pair.prompt_id == prompt.id).order_by(Pair.rank, Pair.id)
    ).all()
    decided = labels.outcomes(session, pairs, project.annotations_per_pair)
    return PromptRead(
        id=prompt.id,
        project_id=prompt.project_id,
        external_id=prompt.external_id,
        prompt=prompt.prompt,
        metadata=prompt.metadata_,
        status=PromptStatus(prompt.status),
        job_id=prompt.job_id,
        created_at=prompt.created_at,
        responses=[
            ResponseRead(
                id=r.id,
                position=r.position,
                external_id=r.external_id,
                model=r.model,
                text=r.text,
                embedded=r.text_sha256 in vectors,
                truncated=vectors[r.text_sha256].truncated if r.text_sha256 in vectors else None,
            )
            for r in responses
        ],
        similarity_matrix=matrix,
        collapsed=[
            Collapsed(
                response_id=c.response.id,
                reason=c.reason,
                duplicate_of=c.duplicate_of.id if c.duplicate_of else None,
            )
            for c in collapsed_responses(responses, vectors, project.near_duplicate_threshold)
        ],
        pairs=[
            PromptPair(
                id=p.id,
                response_a_id=p.response_a_id,
                response_b_id=p.response_b_id,
                strategy=p.strategy,
                rank=p.rank,
                similarity=p.similarity,
                priority=p.priority,
                status=p.status,
                labels=p.labels_count,
                redundant_with=RedundantWith.model_validate(p.redundant_with) if p.redundant_with else None,
                outcome=OutcomeRead.of(decided[p.id]),
            )
            for p in pairs
        ],
    )


def _similarity_matrix(responses: list[Response], vectors: dict[str, Any]) -> list[list[float | None]] | None:
    if any(r.text.strip() and r.text_sha256 not in vectors for r in responses):
        return None
    rows = [
        from_bytes(vectors[r.text_sha256].vector, vectors[r.text_sha256].dim)
        if r.text_sha256 in vectors
        else None
        for r in responses
    ]
    dim = next((v.shape[0] for v in rows if v is not None), 1)
    stacked = np.stack([v if v is not None else np.zeros(dim, dtype=np.float32) for v in rows])
    sims = cosine_matrix(stacked)
    return [
        [
            round(float(sims[i, j]), 6) if rows[i] is not None and rows[j] is not None else None
            for j in range(len(rows))
        ]
        for i in range(len(rows))
    ]


def list_prompts(
    session: Session,
    project: Project,
    *,
    status: PromptStatus | None,
    labelled: bool | None,
    limit: int,
    cursor: str | None,
) -> Page[PromptSummary]:
    """A page of the project's prompts with counts, filtered by status and by whether any label exists."""
    responses = select(func.count()).select_from(Response).where(Response.prompt_id == Prompt.id)
    pairs = select(func.count()).select_from(Pair).where(Pair.prompt_id == Prompt.id)
    labels = (
        select(func.count())
        .select_from(Label)
        .join(Pair, Pair.id == Label.pair_id)
        .where(Pair.prompt_id == Prompt.id)
    )
    query = select(
        Prompt, responses.scalar_subquery(), pairs.scalar_subquery(), labels.scalar_subquery()
    ).where(Prompt.project_id == project.id)
    if status is not None:
        query = query.where(Prompt.status == status)
    if labelled is not None:
        has_label = exists().where(Label.pair_id == Pair.id, Pair.prompt_id == Prompt.id)
        query = query.where(has_label if labelled else ~has_label)
    return paginate_rows(session, query, Prompt.id, limit=limit, cursor=cursor).page(_summary)


def _summary(row: Row[Prompt, int, int, int]) -> PromptSummary:
    prompt, responses, pairs, labels = row
    return PromptSummary(
        id=prompt.id,
        external_id=prompt.external_id,
        status=PromptStatus(prompt.status),
        responses=responses,
        pairs=pairs,
        labels=labels,
        created_at=prompt.created_at,
    )
