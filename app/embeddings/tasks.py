"""Embedding tasks: each opens its own short units of work around the model, which runs outside them."""

from __future__ import annotations

import uuid

from app.db.session import get_database
from app.embeddings import service
from app.tasks import DATABASE_ERRORS, RetryPolicy, task

# Idempotent (vectors keyed by model and text, pairs guarded by the prompt's status), so a retry after a
# database error redoes only what was not committed.
# The one queue of the model's work: GPU workers consume it (`real-align worker --queues embeddings` with
# REAL_EMBEDDING_DEVICE=cuda) while CPU workers take `default`; a CPU-only deployment's workers take both.
EMBED_QUEUE = "embeddings"
EMBED_RETRY = RetryPolicy(max_attempts=5, backoff=2, backoff_max=120, transient=DATABASE_ERRORS)


@task("embeddings.embed_prompts", retry=EMBED_RETRY, queue=EMBED_QUEUE)
def embed_prompts(prompt_ids: list[str]) -> None:
    """Embed these prompts' responses that lack a vector and build the pending ones' pairs, committed
    together for this chunk (a job's progress advances per chunk); then their prompt texts, which only the
    neighbour index reads, so they never hold back pairs. Idempotent."""
    ids = [uuid.UUID(str(p)) for p in prompt_ids]
    _store_missing_vectors(ids, responses=True, prompts=False)
    with get_database().session() as session:
        service.pair_prompts(session, ids)
    _store_missing_vectors(ids, responses=False, prompts=True)
    with get_database().session() as session:
        service.schedule_index_builds(session, ids)


@task("embeddings.embed_texts", retry=EMBED_RETRY, queue=EMBED_QUEUE)
def embed_texts(prompt_ids: list[str]) -> None:
    """Embed these prompts' responses and prompt texts that lack a vector, choosing no pairs. Idempotent.

    For prompts that keep their pairs when their project changes its model (app/selection/reembed.py).
    """
    ids = [uuid.UUID(str(p)) for p in prompt_ids]
    _store_missing_vectors(ids, responses=True, prompts=True)
    with get_database().session() as session:
        service.schedule_index_builds(session, ids)


def _store_missing_vectors(ids: list[uuid.UUID], *, responses: bool, prompts: bool) -> None:
    db = get_database()
    with db.session() as session:
        missing = service.missing_texts(session, ids, responses=responses, prompts=prompts)
    for model_name, texts in missing.items():
        for rows in service.encode(model_name, texts, batch=service.store_batch()):
            with db.session() as session:
                service.store(session, rows)
