"""Bulk reads and writes of prompts and responses for ingest: set-based, no ORM objects per row.

The rows come column-wise (``NewPrompts``), their ids as canonical UUID text made for the whole batch
(``uuid7_texts``). On Postgres they go in by ``COPY`` in text format, each table's rows written by this
module as one buffer (no per-value adaptation): straight into ``prompt`` and ``response`` when the caller
knows none of the external ids is stored (``copy_new``: a unique violation, from a transaction that stored
one meanwhile, is the caller's signal to classify again), else into a temporary table and from there by one
``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING id``, so those another transaction stored meanwhile are
left out (``insert_new``). SQLite, whose writers take turns, gets Core executemany. Always in the caller's
transaction.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from app.db.ids import uuid7_texts
from app.prompts.models import Prompt, PromptStatus, Response

_LOOKUP_CHUNK = 5_000
_PROMPT = cast(Table, Prompt.__table__)
_RESPONSE = cast(Table, Response.__table__)


@dataclass(slots=True)
class NewPrompts:
    """Prompts to store, one entry per prompt in each list (``add``), ids made when the rows are built."""

    external_ids: list[str] = field(default_factory=list)
    prompts: list[Any] = field(default_factory=list)  # a string, or [{role, content}, …]
    metadata: list[dict[str, Any] | None] = field(default_factory=list)
    content_sha256: list[str] = field(default_factory=list)
    text_sha256: list[str] = field(default_factory=list)
    # each response as {"text", "external_id", "model"}
    responses: list[list[dict[str, Any]]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # canonical UUID text, set by ``assign_ids``

    def __len__(self) -> int:
        return len(self.external_ids)

    def add(
        self,
        external_id: str,
        prompt: Any,
        metadata: dict[str, Any] | None,
        content_sha256: str,
        text_sha256: str,
        responses: list[dict[str, Any]],
    ) -> None:
        self.external_ids.append(external_id)
        self.prompts.append(prompt)
        self.metadata.append(metadata)
        self.content_sha256.append(content_sha256)
        self.text_sha256.append(text_sha256)
        self.responses.append(responses)

    def assign_ids(self) -> list[str]:
        """Ids for the prompts, then for their responses in order (one bulk call)."""
        count = len(self)
        self.ids = uuid7_texts(count + sum(len(r) for r in self.responses))
        return self.ids


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


# ------------------------------------------------------------------------------------- COPY text format

# What SQLAlchemy's JSON type writes (json.dumps with its defaults; None → JSON null, as the ORM stores
# it), from one encoder built once: json.dumps builds a new one per call.
_dumps = json.JSONEncoder().encode


def _copy_text(value: str) -> str:
    """A value for COPY's text format: backslash, newline, carriage return and tab escaped. (NUL cannot
    occur: inputs refuse it, app/schemas.py.)"""
    if "\\" in value or "\n" in value or "\r" in value or "\t" in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return value


def _copy_optional(value: str | None) -> str:
    return "\\N" if value is None else _copy_text(value)


def _prompt_lines(new: NewPrompts, tail: str) -> Iterator[str]:
    """``id, external_id, prompt, metadata, content_sha256, text_sha256`` then ``tail`` (constant columns
    and the newline), one line per prompt."""
    for prompt_id, external_id, prompt, metadata, content, text in zip(
        new.ids[: len(new)],
        new.external_ids,
        new.prompts,
        new.metadata,
        new.content_sha256,
        new.text_sha256,
        strict=True,
    ):
        yield (
            f"{prompt_id}\t{_copy_text(external_id)}\t"
            f"{_copy_text(_dumps(prompt))}\t{_copy_text(_dumps(metadata))}\t{content}\t{text}{tail}"
        )


def _response_lines(new: NewPrompts, tail: str, keep: set[str] | None) -> Iterator[str]:
    """``id, prompt_id, position, external_id, model, text, text_sha256`` then ``tail``; only the prompts
    in ``keep`` when it is given."""
    ids = iter(new.ids[len(new) :])
    sha256 = hashlib.sha256
    for prompt_id, responses in zip(new.ids[: len(new)], new.responses, strict=True):
        if keep is not None and prompt_id not in keep:
            for _ in responses:
                next(ids)
            continue
        for position, r in enumerate(responses):
            text = r["text"]
            yield (
                f"{next(ids)}\t{prompt_id}\t{position}\t{_copy_optional(r['external_id'])}\t"
                f"{_copy_optional(r['model'])}\t{_copy_text(text)}\t"
                f"{sha256(text.encode('utf-8')).hexdigest()}{tail}"
            )


def _copy(raw: Any, statement: str, data: bytes) -> None:
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write(data)


_PROMPT_COLUMNS = "id, external_id, prompt, metadata, content_sha256, text_sha256"
_COPY_PROMPTS = f"COPY prompt ({_PROMPT_COLUMNS}, project_id, job_id, status, created_at) FROM STDIN"
_COPY_RESPONSES = (
    "COPY response (id, prompt_id, position, external_id, model, text, text_sha256, created_at) FROM STDIN"
)

# The staging table of ``insert_new`` (one per connection; its rows go at commit).
_PG_STAGE = "real_prompt_in"
_PG_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} (
    id uuid, external_id varchar(512), prompt json, metadata json, content_sha256 varchar(64),
    text_sha256 varchar(64)
) ON COMMIT DELETE ROWS
"""
_PG_INSERT_PROMPTS = f"""
INSERT INTO prompt (id, project_id, job_id, external_id, prompt, metadata, content_sha256, text_sha256,
                    status, created_at)
SELECT id, %s, %s, external_id, prompt, metadata, content_sha256, text_sha256, %s, %s FROM {_PG_STAGE}
ON CONFLICT (project_id, external_id) DO NOTHING
RETURNING id::text
"""


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


@dataclass(frozen=True, slots=True)
class CopyText:
    """A batch's rows for ``copy_new``, in COPY's text format."""

    prompts: bytes
    responses: bytes


def copy_text(project_id: uuid.UUID, job_id: uuid.UUID, new: NewPrompts, now: datetime) -> CopyText:
    """The rows ``copy_new`` writes (ids made here when not yet): plain Python, no database, so it can be
    built while the batch before is being stored."""
    if not new.ids:
        new.assign_ids()
    stamp = now.isoformat()
    head = f"\t{project_id}\t{job_id}\t{PromptStatus.PENDING.value}\t{stamp}\n"
    return CopyText(
        "".join(_prompt_lines(new, head)).encode("utf-8"),
        "".join(_response_lines(new, f"\t{stamp}\n", None)).encode("utf-8"),
    )


def copy_new(session: Session, rows: CopyText) -> None:
    """Postgres only: COPY prompts (status pending) and their responses straight into their tables. For
    prompts none of whose external ids is stored; one that another transaction stored meanwhile raises
    ``psycopg.errors.UniqueViolation`` (run it in a savepoint to go on)."""
    if not rows.prompts:
        return
    raw: Any = session.connection().connection.driver_connection
    _copy(raw, _COPY_PROMPTS, rows.prompts)
    _copy(raw, _COPY_RESPONSES, rows.responses)


def insert_new(
    session: Session, project_id: uuid.UUID, job_id: uuid.UUID, new: NewPrompts, now: datetime
) -> set[str]:
    """Insert the prompts (status pending) and, for those that went in, their responses; the ids (text)
    that went in. On Postgres a prompt whose external id another transaction stored meanwhile is left out
    (ON CONFLICT DO NOTHING), with its responses; on SQLite, whose writers take turns, all go in."""
    if not new:
        return set()
    if not new.ids:
        new.assign_ids()
    if not _postgres(session):
        _insert_sqlite(session, project_id, job_id, new, now)
        return set(new.ids[: len(new)])
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    connection.exec_driver_sql(_PG_CREATE_STAGE)  # every time: a rolled-back transaction drops a new one
    staged = "".join(_prompt_lines(new, "\n")).encode("utf-8")
    _copy(raw, f"COPY {_PG_STAGE} ({_PROMPT_COLUMNS}) FROM STDIN", staged)
    rows = connection.exec_driver_sql(
        _PG_INSERT_PROMPTS, (project_id, job_id, PromptStatus.PENDING.value, now)
    ).fetchall()
    connection.exec_driver_sql(f"DELETE FROM {_PG_STAGE}")
    inserted = {row[0] for row in rows}
    everything = len(inserted) == len(new)
    responses = _response_lines(new, f"\t{now.isoformat()}\n", None if everything else inserted)
    _copy(raw, _COPY_RESPONSES, "".join(responses).encode("utf-8"))
    return inserted


def _insert_sqlite(
    session: Session, project_id: uuid.UUID, job_id: uuid.UUID, new: NewPrompts, now: datetime
) -> None:
    ids = [uuid.UUID(text) for text in new.ids]
    session.execute(
        insert(_PROMPT),
        [
            {
                "id": ids[k],
                "project_id": project_id,
                "job_id": job_id,
                "external_id": new.external_ids[k],
                "prompt": new.prompts[k],
                "metadata": new.metadata[k],  # None is stored as JSON null, as the ORM stores it
                "content_sha256": new.content_sha256[k],
                "text_sha256": new.text_sha256[k],
                "status": PromptStatus.PENDING.value,
                "created_at": now,
            }
            for k in range(len(new))
        ],
    )
    response_ids = iter(ids[len(new) :])
    rows = [
        {
            "id": next(response_ids),
            "prompt_id": ids[k],
            "position": position,
            "external_id": r["external_id"],
            "model": r["model"],
            "text": r["text"],
            "text_sha256": hashlib.sha256(r["text"].encode("utf-8")).hexdigest(),
            "created_at": now,
        }
        for k in range(len(new))
        for position, r in enumerate(new.responses[k])
    ]
    if rows:
        session.execute(insert(_RESPONSE), rows)
