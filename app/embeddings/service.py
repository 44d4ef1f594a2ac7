"""Embedding: every response alone (no prompt), and each prompt as its own text, then the prompts' pairs.

The task entry points (``embeddings.embed_prompts``, ``embeddings.embed_texts``) are in
``app/embeddings/tasks.py``; this module does the work of each unit of work they open.

Responses are embedded on their own, never with their prompt (REAL). The prompt texts (a chat prompt: its
turns as one text, ``app/prompts/text.py``) are embedded after the task's pairs are chosen, for the
cross-prompt prompt index (near-duplicate prompts); they play no part in choosing pairs. Vectors are keyed
by (model, sha256(text)), so a prompt whose text equals a response's (or another prompt's) shares its vector.

Each group of texts is tokenized once and embedded in one pass sorted by token length (``encode``), so a
batch pads only to texts of about its own length, and the stored token counts come from that same pass.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import metrics
from app.config import get_settings
from app.embeddings import repository
from app.embeddings.codec import to_bytes
from app.embeddings.embedder import get_embedder
from app.neighbors.service import schedule_builds
from app.projects.models import Project
from app.prompts.models import Prompt, Response
from app.prompts.text import prompt_text, prompt_text_sha256
from app.selection.service import build_pairs

log = logging.getLogger(__name__)

ENCODE_BATCH = 256  # texts per model call and per insert (at least; see store_batch)


def store_batch() -> int:
    """Texts per model call and per insert: ENCODE_BATCH, or four model batches where that is more (a GPU
    worker's large batches), so the next batch is prepared while one runs."""
    return max(ENCODE_BATCH, 4 * get_settings().embedding_batch_size)


def missing_texts(
    session: Session, prompt_ids: list[uuid.UUID], *, responses: bool = True, prompts: bool = True
) -> dict[str, dict[str, str]]:
    """model → {text_sha256: text} for these prompts' responses and/or prompt texts that have no vector yet.

    Whatever the prompts' status: a paired prompt whose texts lack a vector is one whose project changed
    its model after the prompt was handed out (``embed_texts``); its pairs stay, but its texts get vectors
    under the new model for the neighbour indexes.
    """
    by_model: dict[str, dict[str, str]] = defaultdict(dict)
    if responses:
        rows = session.execute(
            select(Project.embedding_model, Response.text_sha256, Response.text)
            .join(Prompt, Prompt.id == Response.prompt_id)
            .join(Project, Project.id == Prompt.project_id)
            .where(Prompt.id.in_(prompt_ids))
        ).all()
        for model, sha, text in rows:
            if text.strip():
                by_model[model][sha] = text
    if prompts:
        for model, prompt, stored_sha in session.execute(
            select(Project.embedding_model, Prompt.prompt, Prompt.text_sha256)
            .join(Project, Project.id == Prompt.project_id)
            .where(Prompt.id.in_(prompt_ids))
        ):
            text = prompt_text(prompt)
            if text.strip():
                by_model[model].setdefault(stored_sha or prompt_text_sha256(prompt), text)
    for model, texts in list(by_model.items()):
        for sha in repository.existing_hashes(session, model, texts):
            del texts[sha]
    return {m: t for m, t in by_model.items() if t}


def encode(
    model_name: str, texts: dict[str, str], batch: int = ENCODE_BATCH
) -> Iterator[list[dict[str, object]]]:
    """Embedding rows for {text_sha256: text}, ``batch`` texts at a time (no database: the model runs
    outside any transaction, so no lock or connection is held for seconds of compute).

    One tokenizer pass over all the texts, then the texts shortest first: every model batch holds texts of
    about one length (little padding), and each text's token count is that pass's.
    """
    embedder = get_embedder(model_name)
    hashes = list(texts)
    tokens = embedder.tokenize([texts[h] for h in hashes])
    order = tokens.length_order()
    for start in range(0, len(order), batch):
        chunk = order[start : start + batch]
        part = tokens.take(chunk)
        vectors = embedder.embed(part)
        yield [
            {
                "model": model_name,
                "text_sha256": hashes[i],
                "dim": int(vectors.shape[1]),
                "vector": to_bytes(vec),
                "token_count": count,
                "truncated": count > embedder.max_seq_length,
            }
            for i, vec, count in zip(chunk, vectors, part.token_counts, strict=True)
        ]


def store(session: Session, rows: list[dict[str, object]]) -> None:
    """Store encoded rows; a vector another task stored meanwhile is kept."""
    repository.insert_ignoring_duplicates(session, rows)
    if rows:
        metrics.EMBEDDED_TEXTS.labels(str(rows[0]["model"])).inc(len(rows))
        log.info("embeddings.stored", extra={"model": rows[0]["model"], "count": len(rows)})


def pair_prompts(session: Session, prompt_ids: list[uuid.UUID]) -> None:
    """Build the pairs of these prompts that are pending and fully embedded."""
    build_pairs(session, prompt_ids)


def schedule_index_builds(session: Session, prompt_ids: list[uuid.UUID]) -> None:
    """New vectors change the projects' neighbours; the build task debounces (app/neighbors/service.py)."""
    schedule_builds(session, prompt_ids)
