"""The streamed JSONL upload (``POST /v1/projects/{id}/prompts:upload``): files far larger than memory.

The body is read a piece at a time (gunzipped on the fly when it says ``Content-Encoding: gzip`` or starts
with gzip's magic bytes), cut into lines, and stored ``REAL_UPLOAD_BATCH_LINES`` lines per transaction by
the same classify-and-insert path as the JSON route (app/prompts/service.py). Each line is one item of that
route's body, ``{external_id, prompt, responses, metadata?}``; a line without ``external_id`` gets the id
the Python client gives such a record (``real_align.records.to_item``), so a file sent again is all
duplicates. A line is all in or all out: one that is not JSON, fails validation, is longer than
``REAL_MAX_BODY_BYTES`` or names an external id that holds other content is refused with its number and
reason (``job_error``), and the rest goes in. The upload's job counts lines read, prompts stored,
duplicates and refused lines as each batch commits, then follows the embedding like an ingest job.

Memory is bounded by about three batches of lines, not by the file: one batch is stored (a transaction)
while the next is parsed in another thread and the one after is read. While no line has named a stored
external id, a batch is COPYed straight into its tables with no lookup first (app/prompts/service.py,
``store_items(fresh=True)``). On SQLite, where writers take turns, the upload takes the request lock
around each batch's transaction (app/middleware.py), so other requests get in between.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from anyio import to_thread
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import and_, insert, select, update
from starlette.requests import ClientDisconnect

from app.api.pagination import Page, paginate_rows
from app.auth import guard
from app.auth.guard import Credentials
from app.auth.models import Role
from app.config import get_settings
from app.db.base import utcnow
from app.db.ids import uuid7
from app.db.session import get_database
from app.errors import InvalidInput, field_of
from app.jobs import service as jobs
from app.jobs.models import Job, JobError, JobKind
from app.projects import service as projects
from app.prompts import service
from app.prompts.schemas import LineError, PromptItem, UploadResult

GZIP_MAGIC = b"\x1f\x8b"
_DATA_TEAM = frozenset({Role.ADMIN, Role.DATA_TEAM})


# ----------------------------------------------------------------------------------------- reading lines


class LineReader:
    """Bytes in, numbered lines out; a line longer than ``max_line`` becomes an error without being held."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.number = 0  # lines completed so far
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line: drop bytes until its end

    def feed(self, data: bytes) -> list[tuple[int, bytes | None]]:
        """The lines ``data`` completes: (number, bytes), or (number, None) for one over the limit."""
        out: list[tuple[int, bytes | None]] = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            self.number += 1
            if self._skipping:
                out.append((self.number, None))
                self._skipping = False
            elif self._partial:
                self._partial += data[start:end]
                out.append(
                    (self.number, bytes(self._partial) if len(self._partial) <= self.max_line else None)
                )
                self._partial.clear()
            else:
                out.append((self.number, data[start:end] if end - start <= self.max_line else None))
            start = end + 1
        if not self._skipping and start < len(data):
            self._partial += data[start:]
            if len(self._partial) > self.max_line:
                self._partial.clear()
                self._skipping = True
        return out

    def close(self) -> list[tuple[int, bytes | None]]:
        """The last line, when the body does not end with a newline."""
        if self._skipping or self._partial:
            self.number += 1
            last = None if self._skipping else bytes(self._partial)
            self._partial.clear()
            self._skipping = False
            return [(self.number, last)]
        return []


class _Gunzip:
    """Concatenated gzip members (what `cat a.gz b.gz` and pigz produce), a piece at a time."""

    def __init__(self) -> None:
        self._unpack = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def feed(self, data: bytes) -> bytes:
        out = [self._unpack.decompress(data)]
        while self._unpack.eof and self._unpack.unused_data:
            rest = self._unpack.unused_data
            self._unpack = zlib.decompressobj(zlib.MAX_WBITS | 16)
            out.append(self._unpack.decompress(rest))
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return self._unpack.eof


# ----------------------------------------------------------------------------------------- units of work


def begin(credentials: Credentials, project_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """Authorise as the JSON route does (401, 403 for annotators, 404 for a project the caller may not see
    or an archived one) and create the upload's job; its id. One short unit of work of its own: nothing is
    held while the body streams in."""
    with get_database().session() as session:
        caller = guard.check_role(guard.authenticate(session, credentials, now), _DATA_TEAM)
        project = projects.get_active(session, caller, project_id)
        job_id = uuid7()
        session.execute(
            insert(Job).values(
                id=job_id,
                project_id=project.id,
                kind=JobKind.UPLOAD.value,
                total=0,
                lines=0,
                duplicates=0,
                failed_lines=0,
                created_at=utcnow(),
            )
        )
    return job_id


@dataclass
class _Refused:
    line: int
    detail: str
    field: str | None = None
    external_id: str | None = None


@dataclass
class _Batch:
    lines: list[tuple[int, bytes | None]]
    read: int  # lines read once this batch is stored (blank ones too)


@dataclass
class _Counts:
    accepted: int = 0
    duplicates: int = 0
    failed: int = 0
    collided: bool = False  # some line named an external id already stored (or twice in the batch)


def _external_id_of(raw: bytes) -> str | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    found = value.get("external_id") if isinstance(value, dict) else None
    return found[:512] if isinstance(found, str) else None


def _parse(number: int, raw: bytes | None, max_line: int) -> PromptItem | _Refused | None:
    """A line as an item, its refusal, or None for a blank line."""
    if raw is None:
        return _Refused(number, f"the line is longer than {max_line} bytes (REAL_MAX_BODY_BYTES)")
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark
    if not raw.strip():
        return None
    try:
        return PromptItem.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    if any(e["type"] == "missing" and tuple(e["loc"]) == ("external_id",) for e in errors):
        # No external id: the one the Python client derives from the content (real_align.records).
        from real_align.records import Columns, to_item

        try:
            record = json.loads(raw)
            if isinstance(record, dict):
                return PromptItem.model_validate(to_item(record, Columns()))
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        except (ValueError, KeyError, TypeError):
            pass
    first = errors[0]
    if first["type"] == "json_invalid":
        return _Refused(number, f"not JSON: {first['msg']}")
    where = field_of(first["loc"]) or None
    return _Refused(number, first["msg"], where, _external_id_of(raw))


_ITEMS = TypeAdapter(list[PromptItem])


def _parse_all(
    lines: list[tuple[int, bytes | None]], max_line: int
) -> list[tuple[int, PromptItem | _Refused | None]]:
    """Every line parsed (``_parse``); a batch of good lines is validated in one call, which costs half as
    much per line, and line by line only when that call finds something wrong."""
    present = [
        (n, raw) for n, raw in lines if raw is not None and raw.strip() and not raw.startswith(b"\xef")
    ]
    if len(present) == len(lines):
        try:
            items = _ITEMS.validate_json(b"[" + b",".join(raw for _, raw in present) + b"]")
        except ValueError:  # ValidationError, or a line that is not JSON: find which, line by line
            pass
        else:
            if len(items) == len(present):  # else a line held two values (`{…}, {…}`): line by line
                return [(n, item) for (n, _), item in zip(present, items, strict=True)]
    return [(number, _parse(number, raw, max_line)) for number, raw in lines]


@dataclass
class _Prepared:
    """A batch parsed, ready to store: its items, the lines refused so far, and (when it is expected to be
    new) its rows ready to COPY."""

    incoming: list[service.Incoming]
    refused: list[_Refused]
    read: int
    built: service.Fresh | None = None


def prepare(
    batch: _Batch, max_line: int, project_id: uuid.UUID, job_id: uuid.UUID, fresh: bool = False
) -> _Prepared:
    """Parse a batch of lines, fingerprint its items and, when ``fresh`` (no line so far named a stored
    external id) on Postgres, build its rows for COPY. No database: this runs while the batch before is
    stored."""
    refused: list[_Refused] = []
    incoming: list[service.Incoming] = []
    for number, parsed in _parse_all(batch.lines, max_line):
        if isinstance(parsed, _Refused):
            refused.append(parsed)
        elif parsed is not None:
            incoming.append(service.incoming(number, parsed))
    built = None
    if fresh and incoming and get_database().engine.dialect.name == "postgresql":
        built = service.fresh_batch(project_id, job_id, incoming)
    return _Prepared(incoming, refused, batch.read, built)


def store(
    project_id: uuid.UUID, job_id: uuid.UUID, batch: _Prepared, keep_errors: int, fresh: bool = False
) -> _Counts:
    """Store one parsed batch in one transaction, with its refusals (at most ``keep_errors`` of them kept)
    and the job's counters. ``fresh``: no line so far named a stored external id (service.store_items)."""
    refused = list(batch.refused)
    counts = _Counts()
    with get_database().session() as session:
        if batch.incoming:
            outcome = service.store_items(
                session, project_id, job_id, batch.incoming, fresh=fresh, built=batch.built
            )
            counts.accepted, counts.duplicates = outcome.accepted, outcome.duplicates
            refused += [
                _Refused(c.index, service.CONFLICT_DETAIL, "external_id", c.item.external_id)
                for c in outcome.conflicts
            ]
            counts.collided = outcome.duplicates > 0 or bool(outcome.conflicts)
        refused.sort(key=lambda r: r.line)
        counts.failed = len(refused)
        kept = refused[: max(keep_errors, 0)]
        if kept:
            session.execute(
                insert(JobError),
                [
                    {
                        "id": uuid7(),
                        "job_id": job_id,
                        "line": r.line,
                        "external_id": r.external_id,
                        "field": r.field,
                        "detail": r.detail,
                    }  # fmt: skip
                    for r in kept
                ],
            )
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                total=Job.total + counts.accepted,
                lines=batch.read,
                duplicates=Job.duplicates + counts.duplicates,
                failed_lines=Job.failed_lines + counts.failed,
            )
        )
    return counts


def end(job_id: uuid.UUID, lines: int, error: str | None) -> None:
    """The body has been read (or broke off with ``error``): stamp the job, finished at once if nothing of
    it waits for embedding."""
    with get_database().session() as session:
        values: dict[str, Any] = {"lines": lines}
        if error is None:
            values["received_at"] = utcnow()
        else:
            values["error"] = error
        session.execute(update(Job).where(Job.id == job_id).values(**values))
        jobs.finish_jobs_if_done(session, [job_id])


# ----------------------------------------------------------------------------------------- the stream


async def receive(
    chunks: AsyncIterator[bytes],
    *,
    project_id: uuid.UUID,
    job_id: uuid.UUID,
    gzip: bool | None,
    lock: asyncio.Lock | None,
) -> UploadResult:
    """Read the body to its end, storing batch after batch; the upload's totals. ``gzip`` None: decide by
    the first bytes."""
    settings = get_settings()
    reader = LineReader(settings.max_body_bytes)
    size = settings.upload_batch_lines
    totals = _Counts()
    gunzip: _Gunzip | None = None
    decided = gzip is not None
    if gzip:
        gunzip = _Gunzip()
    head = b""
    lines: list[tuple[int, bytes | None]] = []
    # A pipeline: while batch n is stored (its thread mostly waits on the database), batch n + 1 is parsed
    # in another thread and batch n + 2 read here. Batches are stored in order, one at a time; at most
    # two are in flight besides the one being read, so memory stays at about three batches of lines.
    in_flight: deque[asyncio.Task[None]] = deque()
    fresh = True  # no line so far named a stored external id: COPY straight in (service.store_items)

    async def run(batch: _Batch, before: asyncio.Task[None] | None) -> None:
        nonlocal fresh
        # ``fresh`` as the stores so far leave it (the batch before may still be storing)
        work = partial(prepare, batch, settings.max_body_bytes, project_id, job_id, fresh)
        prepared = await to_thread.run_sync(work)
        if before is not None:
            await before
        keep = settings.upload_max_errors - totals.failed
        async with lock if lock is not None else nullcontext():
            done = await to_thread.run_sync(partial(store, project_id, job_id, prepared, keep, fresh))
        totals.accepted += done.accepted
        totals.duplicates += done.duplicates
        totals.failed += done.failed
        fresh = not done.collided

    async def settle() -> None:
        while in_flight:
            await in_flight.popleft()

    async def hand_over(lines: list[tuple[int, bytes | None]], read: int) -> None:
        if len(in_flight) >= 2:
            await in_flight.popleft()
        before = in_flight[-1] if in_flight else None
        in_flight.append(asyncio.create_task(run(_Batch(lines, read), before)))

    error: str | None = None
    empty = True
    try:
        async for chunk in chunks:
            empty = empty and not chunk
            if not decided:
                head += chunk
                if len(head) < 2:
                    continue
                decided = True
                gunzip = _Gunzip() if head.startswith(GZIP_MAGIC) else None
                chunk, head = head, b""
            try:
                data = gunzip.feed(chunk) if gunzip is not None else chunk
            except zlib.error as exc:
                error = f"the body is not valid gzip after line {reader.number}: {exc}"
                break
            lines += reader.feed(data)
            while len(lines) >= size:
                await hand_over(lines[:size], lines[size - 1][0])
                lines = lines[size:]
        else:
            if head:  # a body of one byte
                lines += reader.feed(head)
            if empty:
                error = "the body is empty: send JSON Lines, one item a line"
            if gunzip is not None and not gunzip.complete and (reader.number or lines):
                error = (
                    f"the gzip stream ends early (after line {reader.number}); the last line is not stored"
                )
            else:
                lines += reader.close()
        # The last lines (or none: the job's line count); after a broken gzip stream, the complete ones.
        await hand_over(lines, reader.number)
        await settle()
    except ClientDisconnect:
        error = f"the client went away after line {reader.number}"
        await settle()
        await to_thread.run_sync(partial(end, job_id, reader.number, error))
        raise
    except BaseException:
        for task in in_flight:
            task.cancel()
        raise
    await to_thread.run_sync(partial(end, job_id, reader.number, error))
    if error is not None and reader.number == 0:
        raise InvalidInput(error, field="body")  # nothing could be read: the job says so too (failed)
    return UploadResult(
        job_id=job_id,
        lines=reader.number,
        accepted=totals.accepted,
        duplicates=totals.duplicates,
        errors=totals.failed,
        complete=error is None,
        error=error,
    )


# ----------------------------------------------------------------------------------------- reading errors


def errors_page(session: Any, job: Job, *, limit: int, cursor: str | None) -> Page[LineError]:
    """The job's refused lines, in line order."""
    query = select(JobError).where(and_(JobError.job_id == job.id)).order_by(JobError.id)
    return paginate_rows(session, query, JobError.id, limit=limit, cursor=cursor).page(
        lambda row: LineError(
            line=row[0].line, external_id=row[0].external_id, field=row[0].field, detail=row[0].detail
        )  # fmt: skip
    )
