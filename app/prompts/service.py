"""Ingest: idempotent by external_id, all-or-nothing per batch, embedding sent after commit."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import numpy as np
from sqlalchemy import Row, exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.api.pagination import Page, paginate_rows
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.errors import Conflict, NotFound
from app.jobs.models import Job, JobKind
from app.labels import repository as labels
from app.labels.schemas import OutcomeRead
from app.pairs.models import Pair
from app.pairs.schemas import RedundantWith
from app.projects.models import Project
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
from app.queue.models import Label
from app.selection.service import collapsed_responses
from app.selection.strategies import cosine_matrix


def text_sha256(text: str) -> str:
    """The key a response's vector is stored under (with the model name)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prompt_value(item: PromptItem) -> Any:
    return item.prompt if isinstance(item.prompt, str) else [m.model_dump() for m in item.prompt]


def content_sha256(item: PromptItem) -> str:
    """A fingerprint of everything an item carries, to tell a retry (same) from a conflict (different)."""
    canonical = {
        "prompt": _prompt_value(item),
        "responses": [r.model_dump() for r in item.normalized_responses()],
        "metadata": item.metadata,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def ingest(session: Session, project: Project, body: IngestRequest) -> IngestResult:
    """Store new prompts, count retries, report conflicts; concurrent duplicates are retried."""
    for _attempt in range(3):
        try:
            with session.begin_nested():
                return _ingest_once(session, project, body)
        except IntegrityError:
            continue  # another request stored one of these external ids meanwhile; classify again
    raise Conflict("concurrent ingests of the same external ids kept colliding; retry the request")


def _ingest_once(session: Session, project: Project, body: IngestRequest) -> IngestResult:
    fingerprints = [content_sha256(item) for item in body.items]
    external_ids = list({item.external_id for item in body.items})
    stored: dict[str, str] = {}
    for start in range(0, len(external_ids), 500):
        chunk = external_ids[start : start + 500]
        rows = session.execute(
            select(Prompt.external_id, Prompt.content_sha256).where(
                Prompt.project_id == project.id, Prompt.external_id.in_(chunk)
            )
        )
        stored.update((external_id, fingerprint) for external_id, fingerprint in rows)
    duplicates = 0
    conflicts: list[IngestConflict] = []
    new: list[tuple[PromptItem, str]] = []
    for index, (item, fingerprint) in enumerate(zip(body.items, fingerprints, strict=True)):
        known = stored.get(item.external_id)
        if known is None:
            stored[item.external_id] = fingerprint
            new.append((item, fingerprint))
        elif known == fingerprint:
            duplicates += 1
        else:
            conflicts.append(
                IngestConflict(
                    index=index,
                    external_id=item.external_id,
                    detail="external_id already holds different content; nothing was changed",
                )
            )
    if not new:
        return IngestResult(accepted=0, duplicates=duplicates, conflicts=conflicts, job_id=None)
    job = Job(project_id=project.id, kind=JobKind.INGEST, total=len(new))
    session.add(job)
    session.flush()
    prompts: list[Prompt] = []
    for item, fingerprint in new:
        prompt = Prompt(
            project_id=project.id,
            job_id=job.id,
            external_id=item.external_id,
            prompt=_prompt_value(item),
            metadata_=item.metadata,
            content_sha256=fingerprint,
            status=PromptStatus.PENDING,
        )
        prompt.responses = [
            Response(
                position=position,
                external_id=r.external_id,
                model=r.model,
                text=r.text,
                text_sha256=text_sha256(r.text),
            )
            for position, r in enumerate(item.normalized_responses())
        ]
        prompts.append(prompt)
    session.add_all(prompts)
    session.flush()
    chunk_size = get_settings().embed_chunk_prompts
    for start in range(0, len(prompts), chunk_size):
        ids = [str(p.id) for p in prompts[start : start + chunk_size]]
        send_after_commit(session, "embeddings.embed_prompts", prompt_ids=ids)
    return IngestResult(accepted=len(new), duplicates=duplicates, conflicts=conflicts, job_id=job.id)


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
