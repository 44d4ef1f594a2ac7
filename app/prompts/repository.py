"""Bulk reads and writes of prompts and responses for ingest: set-based, no ORM objects per row.

On Postgres the prompts go in as one ``INSERT … SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING
RETURNING id`` (a fixed statement, so psycopg prepares it once, whatever the batch size) and their responses
by ``COPY``; elsewhere (SQLite) as Core executemany. Either way in the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from app.prompts.models import Prompt, PromptStatus, Response

_LOOKUP_CHUNK = 1_000
_PROMPT = cast(Table, Prompt.__table__)
_RESPONSE = cast(Table, Response.__table__)


@dataclass(frozen=True, slots=True)
class NewPrompt:
    id: uuid.UUID
    external_id: str
    prompt: Any
    metadata: dict[str, Any] | None
    content_sha256: str
    text_sha256: str


@dataclass(frozen=True, slots=True)
class NewResponse:
    id: uuid.UUID
    prompt_id: uuid.UUID
    position: int
    external_id: str | None
    model: str | None
    text: str
    text_sha256: str


def stored_fingerprints(
    session: Session, project_id: uuid.UUID, external_ids: Sequence[str]
) -> dict[str, str]:
    """external_id → content_sha256 of those of the project's prompts that exist (unique index lookup)."""
    stored: dict[str, str] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for start in range(0, len(external_ids), _LOOKUP_CHUNK):
        chunk = list(external_ids[start : start + _LOOKUP_CHUNK])
        rows: Iterable[Any]
        if postgres:
            rows = session.connection().exec_driver_sql(
                "SELECT external_id, content_sha256 FROM prompt"
                " WHERE project_id = %s AND external_id = ANY(%s)",
                (project_id, chunk),
            )
        else:
            rows = session.execute(
                select(Prompt.external_id, Prompt.content_sha256).where(
                    Prompt.project_id == project_id, Prompt.external_id.in_(chunk)
                )
            )
        stored.update((external_id, fingerprint) for external_id, fingerprint in rows)
    return stored


# The prompts are copied into a temporary table (one per connection; its rows go at commit) and
# inserted from there: COPY is the cheapest way in, and INSERT … SELECT keeps ON CONFLICT for ids another
# transaction stores meanwhile.
_PG_STAGE = "real_prompt_in"
_PG_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} (
    id uuid, external_id varchar(512), prompt json, metadata json, content_sha256 varchar(64),
    text_sha256 varchar(64)
) ON COMMIT DELETE ROWS
"""
_PG_COPY_PROMPTS = (
    f"COPY {_PG_STAGE} (id, external_id, prompt, metadata, content_sha256, text_sha256) FROM STDIN"
)
_PG_INSERT_PROMPTS = f"""
INSERT INTO prompt (id, project_id, job_id, external_id, prompt, metadata, content_sha256, text_sha256,
                    status, created_at)
SELECT id, %s, %s, external_id, prompt, metadata, content_sha256, text_sha256, %s, %s FROM {_PG_STAGE}
ON CONFLICT (project_id, external_id) DO NOTHING
RETURNING id
"""

_PG_COPY_RESPONSES = (
    "COPY response (id, prompt_id, position, external_id, model, text, text_sha256, created_at) FROM STDIN"
)


def insert_prompts(
    session: Session,
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    prompts: Sequence[NewPrompt],
    responses: Sequence[NewResponse],
    now: datetime,
) -> set[uuid.UUID]:
    """Insert the prompts (status pending) and, for those that went in, their responses. Returns the ids
    that went in: on Postgres a prompt whose external id another transaction stored meanwhile is left out
    (ON CONFLICT DO NOTHING), with its responses; on SQLite, whose writers take turns, all go in."""
    if not prompts:
        return set()
    if session.get_bind().dialect.name != "postgresql":
        session.execute(
            insert(_PROMPT),
            [
                {
                    "id": p.id,
                    "project_id": project_id,
                    "job_id": job_id,
                    "external_id": p.external_id,
                    "prompt": p.prompt,
                    "metadata": p.metadata,  # None is stored as JSON null, as the ORM stores it
                    "content_sha256": p.content_sha256,
                    "text_sha256": p.text_sha256,
                    "status": PromptStatus.PENDING.value,
                    "created_at": now,
                }
                for p in prompts
            ],
        )
        if responses:
            session.execute(
                insert(_RESPONSE),
                [
                    {
                        "id": r.id,
                        "prompt_id": r.prompt_id,
                        "position": r.position,
                        "external_id": r.external_id,
                        "model": r.model,
                        "text": r.text,
                        "text_sha256": r.text_sha256,
                        "created_at": now,
                    }
                    for r in responses
                ],
            )
        return {p.id for p in prompts}
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    connection.exec_driver_sql(_PG_CREATE_STAGE)  # every time: a rolled-back transaction drops a new one
    dumps = json.dumps  # what SQLAlchemy's JSON type writes; None → JSON null, as the ORM stores it
    with raw.cursor() as cursor:
        with cursor.copy(_PG_COPY_PROMPTS) as copy:
            for p in prompts:
                copy.write_row(
                    (p.id, p.external_id, dumps(p.prompt), dumps(p.metadata), p.content_sha256, p.text_sha256)
                )
    rows = connection.exec_driver_sql(
        _PG_INSERT_PROMPTS, (project_id, job_id, PromptStatus.PENDING.value, now)
    ).fetchall()
    connection.exec_driver_sql(f"DELETE FROM {_PG_STAGE}")
    inserted = {row[0] for row in rows}
    everything = len(inserted) == len(prompts)
    with raw.cursor() as cursor, cursor.copy(_PG_COPY_RESPONSES) as copy:
        for r in responses:
            if everything or r.prompt_id in inserted:
                row = (r.id, r.prompt_id, r.position, r.external_id, r.model, r.text, r.text_sha256, now)
                copy.write_row(row)
    return inserted
