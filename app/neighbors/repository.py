"""Queries for neighbour indexes: a project's embedded texts, their vectors, responses and prompts by text."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.embeddings.codec import from_bytes
from app.embeddings.models import Embedding
from app.neighbors.index import TextKind
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response

# IN-list size per query: well under every driver's parameter limit.
CHUNK = 500


@dataclass(frozen=True)
class ResponseRow:
    """A response as a neighbour listing shows it."""

    response_id: uuid.UUID
    prompt_id: uuid.UUID
    prompt_external_id: str
    text: str
    text_sha256: str


def _embedded_texts(project: Project, kind: TextKind) -> Select[Any]:
    """The distinct text hashes of one kind in the project that have a vector for its model."""
    if kind is TextKind.PROMPTS:
        column = Prompt.text_sha256
        query = select(column).where(Prompt.project_id == project.id, column.is_not(None))
    else:
        column = Response.text_sha256
        query = (
            select(column)
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Prompt.project_id == project.id)
        )
    return query.join(
        Embedding, (Embedding.text_sha256 == column) & (Embedding.model == project.embedding_model)
    ).distinct()


def embedded_hashes(session: Session, project: Project, kind: TextKind = TextKind.RESPONSES) -> list[str]:
    """Distinct text hashes of the project's responses (or prompts) with a vector for its model, sorted."""
    query = _embedded_texts(project, kind)
    return [sha for sha in session.scalars(query.order_by(query.selected_columns[0])) if sha is not None]


def count_embedded_texts(session: Session, project: Project, kind: TextKind = TextKind.RESPONSES) -> int:
    """How many distinct response (or prompt) texts of the project have a vector for its model."""
    inner = _embedded_texts(project, kind).subquery()
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def has_pending_prompts(session: Session, project_id: uuid.UUID) -> bool:
    """True while some prompt of the project still waits for embeddings."""
    return (
        session.scalar(
            select(Prompt.id)
            .where(Prompt.project_id == project_id, Prompt.status == PromptStatus.PENDING)
            .limit(1)
        )
        is not None
    )


def vector_matrix(session: Session, model: str, hashes: list[str]) -> npt.NDArray[np.float32]:
    """The stored vectors of these texts for a model, one row per hash in the given order."""
    rows: dict[str, npt.NDArray[np.float32]] = {}
    for start in range(0, len(hashes), CHUNK):
        chunk = hashes[start : start + CHUNK]
        for sha, dim, blob in session.execute(
            select(Embedding.text_sha256, Embedding.dim, Embedding.vector).where(
                Embedding.model == model, Embedding.text_sha256.in_(chunk)
            )
        ):
            rows[sha] = from_bytes(blob, dim)
    missing = [h for h in hashes if h not in rows]
    if missing:
        raise LookupError(f"{len(missing)} texts have no stored vector for {model}")
    if not hashes:
        return np.empty((0, 0), np.float32)
    return np.stack([rows[h] for h in hashes])


def vector_for(session: Session, model: str, text_sha256: str) -> npt.NDArray[np.float32] | None:
    """One text's stored vector for a model, or None when it has none yet."""
    row = session.execute(
        select(Embedding.dim, Embedding.vector).where(
            Embedding.model == model, Embedding.text_sha256 == text_sha256
        )
    ).first()
    return None if row is None else from_bytes(row.vector, row.dim)


def response_in_project(
    session: Session, project_id: uuid.UUID, response_id: uuid.UUID
) -> ResponseRow | None:
    """A response of this project, or None (also when it belongs to another project)."""
    row = session.execute(
        select(Response.id, Response.prompt_id, Prompt.external_id, Response.text, Response.text_sha256)
        .join(Prompt, Prompt.id == Response.prompt_id)
        .where(Response.id == response_id, Prompt.project_id == project_id)
    ).first()
    return None if row is None else ResponseRow(*row)


def responses_with_texts(
    session: Session, project_id: uuid.UUID, hashes: Iterable[str]
) -> dict[str, list[ResponseRow]]:
    """The project's responses by text hash, each list in response-id order."""
    wanted = list(dict.fromkeys(hashes))
    out: dict[str, list[ResponseRow]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for row in session.execute(
            select(Response.id, Response.prompt_id, Prompt.external_id, Response.text, Response.text_sha256)
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Prompt.project_id == project_id, Response.text_sha256.in_(chunk))
            .order_by(Response.id)
        ):
            out.setdefault(row.text_sha256, []).append(ResponseRow(*row))
    return out


def responses_per_text(session: Session, project_id: uuid.UUID) -> dict[str, int]:
    """How many of the project's responses carry each text hash."""
    return {
        sha: int(count)
        for sha, count in session.execute(
            select(Response.text_sha256, func.count())
            .join(Prompt, Prompt.id == Response.prompt_id)
            .where(Prompt.project_id == project_id)
            .group_by(Response.text_sha256)
        )
    }


@dataclass(frozen=True)
class PromptRef:
    """A prompt as a near-duplicate group lists it."""

    prompt_id: uuid.UUID
    external_id: str


def prompts_per_text(session: Session, project_id: uuid.UUID) -> dict[str, int]:
    """How many of the project's prompts carry each prompt-text hash."""
    return {
        sha: int(count)
        for sha, count in session.execute(
            select(Prompt.text_sha256, func.count())
            .where(Prompt.project_id == project_id, Prompt.text_sha256.is_not(None))
            .group_by(Prompt.text_sha256)
        )
        if sha is not None
    }


def prompts_with_texts(
    session: Session, project_id: uuid.UUID, hashes: Iterable[str]
) -> dict[str, list[PromptRef]]:
    """The project's prompts by prompt-text hash, each list in external-id order."""
    wanted = list(dict.fromkeys(hashes))
    out: dict[str, list[PromptRef]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for prompt_id, external_id, sha in session.execute(
            select(Prompt.id, Prompt.external_id, Prompt.text_sha256)
            .where(Prompt.project_id == project_id, Prompt.text_sha256.in_(chunk))
            .order_by(Prompt.external_id)
        ):
            if sha is not None:
                out.setdefault(sha, []).append(PromptRef(prompt_id, external_id))
    return out


def projects_of_prompts(session: Session, prompt_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The distinct projects these prompts belong to."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(prompt_ids), CHUNK):
        found.update(
            session.scalars(
                select(Prompt.project_id).where(Prompt.id.in_(prompt_ids[start : start + CHUNK])).distinct()
            )
        )
    return sorted(found)
