"""A synchronous client for the real-align HTTP API (httpx)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Sized
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from real_align import __version__
from real_align.errors import (
    ChecksumMismatchError,
    ExportFailedError,
    NotFoundError,
    RealAlignError,
    TransportError,
    WaitTimeoutError,
    error_for_status,
)
from real_align.models import (
    Assignment,
    Choice,
    Export,
    IngestConflict,
    IngestResult,
    Label,
    Lease,
    LineError,
    Manifest,
    NothingToClaim,
    Project,
    ProjectStats,
    ShownResponse,
    UploadResult,
)
from real_align.progress import bar
from real_align.records import Columns, batches, rows_of, to_item

if TYPE_CHECKING:
    import datasets
    import pandas

Id = str | uuid.UUID
ExportFormat = Literal["jsonl", "parquet"]
ExportStyle = Literal["standard", "conversational"]
ExportCompression = Literal["none", "gzip"]
M = TypeVar("M", bound=BaseModel)

# Statuses after which the server did not act on the request, so any request may be sent again.
_RETRY_ANY = frozenset({429, 503})
# Statuses worth another try for requests that are safe to repeat (GETs, the ingest POST).
_RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504, 429})
# Refusals that waiting does not cure: the caller must act first (label or give back a lease).
_NO_RETRY_CODES = frozenset({"active_lease_limit"})


class Client:
    """The real-align API: projects, ingest, readiness and exports for data teams; claiming and labelling
    pairs for annotators (an annotator key, or an LLM judge's).

    `retries`: how many times a request is sent again after a 429/503 (honouring Retry-After, up to
    `max_retry_after` seconds) and, for requests that are safe to repeat (GETs, and ingest, which the
    server makes idempotent by external_id), after a 5xx or a broken connection. Waits grow exponentially,
    with jitter.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_after: float = 120.0,
        max_request_bytes: int = 6 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        root = base_url.rstrip("/")
        root = root.removesuffix("/v1")
        self.base_url = root
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.max_request_bytes = max_request_bytes
        self._http = httpx.Client(
            base_url=root + "/v1",
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json, application/problem+json",
                "User-Agent": f"real-align-python/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    # -- lifecycle -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- projects ------------------------------------------------------------------------------------------

    def create_project(self, name: str, **settings: Any) -> Project:
        """Create a project; `settings` are the other fields of `POST /v1/projects` (strategy, budget…)."""
        return self._model(Project, "POST", "/projects", json={"name": name, **settings})

    def get_project(self, project_id: Id) -> Project:
        """One project."""
        return self._model(Project, "GET", f"/projects/{project_id}", idempotent=True)

    def list_projects(self) -> list[Project]:
        """Every project the key may see, oldest first."""
        return [Project.model_validate(p) for p in self._pages("/projects")]

    def get_stats(self, project_id: Id) -> ProjectStats:
        """Ingest, embedding, pairing, labelling and budget counts."""
        return self._model(ProjectStats, "GET", f"/projects/{project_id}/stats", idempotent=True)

    # -- ingest --------------------------------------------------------------------------------------------

    def ingest(
        self,
        project_id: Id,
        records: Iterable[Mapping[str, Any]] | pandas.DataFrame | datasets.Dataset,
        *,
        batch_size: int = 500,
        prompt_column: str = "prompt",
        responses_column: str | Sequence[str] = "responses",
        external_id_column: str = "external_id",
        metadata_column: str = "metadata",
        progress: bool = False,
    ) -> IngestResult:
        """Send prompts with their candidate responses, in batches of at most `batch_size` (the server's cap
        is 500 by default) and `max_request_bytes`.

        `records`: a list (or any iterable) of dicts ``{external_id?, prompt, responses, metadata?}``, a
        pandas DataFrame, or a `datasets.Dataset`. `prompt` is a string or ``[{role, content}]`` messages;
        `responses` a list of strings or of ``{text, model?, external_id?}``, or, with `responses_column` set
        to several column names, one text column per response. A record without an external id gets
        ``sha256:`` + a hash of its prompt and responses, so sending it again is a duplicate, not a new
        prompt; that also makes every batch safe to retry. Conflicts (an external id that already holds other
        content) are reported in the result, and nothing is changed for them.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        columns = Columns(
            prompt=prompt_column,
            responses=responses_column,
            external_id=external_id_column,
            metadata=metadata_column,
        )
        total = len(records) if isinstance(records, Sized) else None
        items = (to_item(row, columns) for row in rows_of(records))
        accepted = duplicates = sent = 0
        conflicts: list[IngestConflict] = []
        job_ids: list[uuid.UUID] = []
        count = 0
        with bar(progress, "ingest", unit="items") as shown:
            shown.update(completed=0, total=total)
            for batch, body in batches(items, max_items=batch_size, max_bytes=self.max_request_bytes):
                response = self._request(
                    "POST",
                    f"/projects/{project_id}/prompts",
                    content=body,
                    headers={"Content-Type": "application/json"},
                    idempotent=True,
                )
                result = response.json()
                accepted += int(result["accepted"])
                duplicates += int(result["duplicates"])
                conflicts += [
                    IngestConflict.model_validate({**c, "index": sent + int(c["index"])})
                    for c in result.get("conflicts") or []
                ]
                if result.get("job_id"):
                    job_ids.append(uuid.UUID(result["job_id"]))
                sent += len(batch)
                count += 1
                shown.update(completed=sent, status=f"{accepted} new, {duplicates} duplicates")
            shown.update(completed=sent, total=sent)
        return IngestResult(
            accepted=accepted, duplicates=duplicates, conflicts=conflicts, job_ids=job_ids, batches=count
        )

    def upload(self, project_id: Id, path: str | os.PathLike[str], *, progress: bool = False) -> UploadResult:
        """Send a JSONL file (``{external_id?, prompt, responses, metadata?}`` a line; gzipped if it ends in
        ``.gz`` or starts with gzip's magic bytes) as one streamed request, of any size: the server stores it
        a batch of lines at a time. A bad line is refused with its number and reason (`upload_errors`), the
        rest goes in; sending the file again stores nothing twice. The bar shows the file's bytes sent."""
        file = Path(path)
        size = file.stat().st_size
        with bar(progress, "upload", unit="bytes") as shown:
            shown.update(completed=0, total=size)
            body = _FileBody(file, lambda sent: shown.update(completed=sent))
            response = self._request(
                "POST",
                f"/projects/{project_id}/prompts:upload",
                content=body,
                headers={"Content-Type": "application/x-ndjson"},
            )
            result = UploadResult.model_validate(response.json())
            counts = f"{result.accepted} new, {result.duplicates} duplicates, {result.errors} refused"
            shown.update(completed=size, status=counts)
        return result

    def upload_errors(self, job_id: Id) -> Iterator[LineError]:
        """An upload's refused lines, in line order (every page)."""
        for item in self._pages(f"/jobs/{job_id}/errors"):
            yield LineError.model_validate(item)

    def wait_until_ready(
        self,
        project_id: Id,
        timeout: float | None = None,
        progress: bool = True,
        *,
        poll_interval: float = 1.0,
    ) -> ProjectStats:
        """Block until no prompt of the project waits for its embeddings (all are paired or unpairable).

        The bar shows responses embedded out of all responses. WaitTimeoutError after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with bar(progress, "embedding", unit="responses") as shown:
            while True:
                stats = self.get_stats(project_id)
                shown.update(completed=stats.embedded, total=stats.responses, status=f"{stats.pairs} pairs")
                pending = self._request(
                    "GET",
                    f"/projects/{project_id}/prompts",
                    params={"status": "pending", "limit": 1},
                    idempotent=True,
                ).json()
                if not pending["items"]:
                    final = self.get_stats(project_id)
                    shown.update(
                        completed=final.embedded, total=final.responses, status=f"{final.pairs} pairs"
                    )
                    return final
                self._sleep_or_timeout(deadline, poll_interval, f"project {project_id} to be ready", timeout)

    # -- exports -------------------------------------------------------------------------------------------

    def export(
        self,
        project_id: Id,
        format: ExportFormat | None = None,
        style: ExportStyle | None = None,
        compression: ExportCompression | None = None,
        snapshot_at: datetime | str | None = None,
        since: Id | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Export:
        """Start a DPO export. Only the arguments given are sent; the server's defaults are jsonl, standard
        (TRL prompt/chosen/rejected), no compression, a snapshot of now, every pair. `since` is a previous
        export's id (only pairs completed after it). Returns at once; see wait_for_export."""
        body: dict[str, Any] = {}
        if format is not None:
            body["format"] = format
        if style is not None:
            body["style"] = style
        if compression is not None:
            body["compression"] = compression
        if snapshot_at is not None:
            body["snapshot_at"] = (
                snapshot_at.isoformat() if isinstance(snapshot_at, datetime) else snapshot_at
            )
        if since is not None:
            body["since"] = str(since)
        if filters is not None:
            body["filters"] = dict(filters)
        return self._model(Export, "POST", f"/projects/{project_id}/exports", json=body)

    def get_export(self, export_id: Id) -> Export:
        """An export's status, row count and sha256."""
        return self._model(Export, "GET", f"/exports/{export_id}", idempotent=True)

    def list_exports(self, project_id: Id, status: str | None = None) -> list[Export]:
        """The project's exports, newest first (every page); `status` keeps only those in that state."""
        params = {"status": status} if status is not None else {}
        return [Export.model_validate(e) for e in self._pages(f"/projects/{project_id}/exports", params)]

    def latest_export(self, project_id: Id, format: ExportFormat | None = None) -> Export:
        """The newest succeeded export of the project (in `format`, if given); NotFoundError if none."""
        params = {"format": format} if format is not None else None
        response = self._request(
            "GET", f"/projects/{project_id}/exports/latest", params=params, idempotent=True
        )
        return Export.model_validate(response.json())

    def get_manifest(self, export_id: Id) -> Manifest:
        """The export's manifest.json: counts, filters, schema and code versions, sha256 of each file."""
        manifest: Manifest = self._request("GET", f"/exports/{export_id}/manifest", idempotent=True).json()
        return manifest

    def wait_for_export(
        self,
        export_id: Id,
        timeout: float | None = None,
        progress: bool = True,
        *,
        poll_interval: float = 0.5,
    ) -> Export:
        """Block until the export succeeded (returned) or failed (ExportFailedError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = poll_interval
        with bar(progress, f"export {export_id}", unit="rows") as shown:
            while True:
                run = self.get_export(export_id)
                shown.update(status=run.status)
                if run.status == "succeeded":
                    shown.update(completed=run.rows or 0, total=run.rows or 0, status=run.status)
                    return run
                if run.status == "failed":
                    raise ExportFailedError(
                        status=None,
                        code="export_failed",
                        title="The export failed",
                        detail=run.error,
                        problem=run.model_dump(mode="json"),
                    )
                self._sleep_or_timeout(deadline, interval, f"export {export_id}", timeout)
                interval = min(interval * 1.5, 5.0)

    def download_export(
        self, export_id: Id, path: str | os.PathLike[str], *, progress: bool = True, verify: bool = True
    ) -> Path:
        """Stream a succeeded export's file to `path` (a file, or an existing folder to put the server's file
        name in). The file appears only when complete; with `verify`, its sha256 is checked against the one
        the server recorded. Returns the file's path."""
        run = self.get_export(export_id)
        target = Path(path)
        for attempt in range(self.retries + 1):
            try:
                return self._download(run, target, progress=progress, verify=verify)
            except TransportError:
                if attempt >= self.retries:
                    raise
                time.sleep(self._backoff(attempt))
        raise AssertionError("unreachable")

    def load_export(
        self,
        export_id: Id,
        *,
        timeout: float | None = None,
        progress: bool = False,
        cache_dir: str | None = None,
    ) -> datasets.Dataset:
        """The export as a `datasets.Dataset` (split "train"), waiting for it to finish first.

        Needs the `datasets` package. The file is downloaded to a temporary folder and removed afterwards; the
        Arrow cache goes to `cache_dir` (default: the Hugging Face datasets cache).
        """
        import datasets

        run = self.get_export(export_id)
        if not run.finished:
            run = self.wait_for_export(export_id, timeout=timeout, progress=progress)
        elif run.status == "failed":
            run = self.wait_for_export(export_id, progress=False)  # raises ExportFailedError
        builder = "parquet" if run.format == "parquet" else "json"
        if run.rows == 0 and builder == "json":  # the json builder cannot read an empty file
            return datasets.Dataset.from_dict({name: [] for name in self._columns(run)})
        with tempfile.TemporaryDirectory(prefix="real-align-export-") as folder:
            path = self.download_export(run.id, folder, progress=progress)
            loaded = datasets.load_dataset(
                builder, data_files=str(path), split="train", cache_dir=cache_dir, keep_in_memory=False
            )
            # load_dataset copies the rows into its Arrow cache, so the downloaded file may go.
            assert isinstance(loaded, datasets.Dataset)
            return loaded

    # -- annotating ----------------------------------------------------------------------------------------

    def claim(self, project_id: Id, *, annotator: str | None = None) -> Assignment | NothingToClaim:
        """Lease the next pair to label, or NothingToClaim (falsy) with the server's reason (empty,
        budget_spent, waiting_for_embeddings) and its Retry-After. `annotator`: admin keys only, claim on
        behalf of that annotator. Not retried after a 5xx (that could lease a second pair); an unlabelled
        lease simply expires."""
        body = {"annotator": annotator} if annotator is not None else None
        response = self._request("POST", f"/projects/{project_id}/queue/claim", json=body)
        if response.status_code == 204:
            return NothingToClaim(
                reason=response.headers.get("Real-Queue-Reason", "empty"),
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        return Assignment.model_validate({**response.json(), "project_id": str(project_id)})

    def assignments(
        self, project_id: Id, *, annotator: str | None = None, timeout: float | None = None
    ) -> Iterator[Assignment]:
        """Claim pairs one after another until the queue is empty or the budget is spent; while the project
        still waits for embeddings, wait as the server says (WaitTimeoutError after `timeout` seconds).

        Label, skip or release each before taking the next: unlabelled leases count against the annotator's
        cap of live leases (ActiveLeaseLimitError) until they expire."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            claimed = self.claim(project_id, annotator=annotator)
            if isinstance(claimed, Assignment):
                yield claimed
                continue
            if claimed.reason != "waiting_for_embeddings":
                return
            wait = claimed.retry_after if claimed.retry_after is not None else 5.0
            self._sleep_or_timeout(deadline, wait, f"project {project_id} to have pairs", timeout)

    def label(
        self,
        assignment: Assignment | Id,
        choice: Choice | ShownResponse | uuid.UUID,
        *,
        confidence: int | None = None,
        rationale: str | None = None,
        idempotency_key: str | None = None,
    ) -> Label:
        """Label a leased pair: `choice` is "a" or "b" (the screen position that won), "tie" or "both_bad",
        or the winning response itself (one of the assignment's, given as the Assignment).

        Every call sends an Idempotency-Key (a new one unless `idempotency_key` is given) and is retried
        after a broken connection or a 5xx: the server answers a retry with the first label (`replayed`),
        so a retry never labels twice. Pass your own key to make retries across processes safe too.
        LeaseExpiredError once the lease ended; AlreadyLabeledError for a different second label."""
        if isinstance(choice, ShownResponse | uuid.UUID):
            if not isinstance(assignment, Assignment):
                raise ValueError("to label by response, pass the Assignment (it knows which side is which)")
            choice = assignment.side_of(choice)
        body: dict[str, Any] = {"choice": choice}
        if confidence is not None:
            body["confidence"] = confidence
        if rationale is not None:
            body["rationale"] = rationale
        key = idempotency_key or f"real-align-python-{uuid.uuid4().hex}"
        response = self._request(
            "POST",
            f"/assignments/{_assignment_id(assignment)}/label",
            json=body,
            headers={"Idempotency-Key": key},
            idempotent=True,
        )
        return Label.model_validate({**response.json(), "replayed": response.status_code == 200})

    def skip(self, assignment: Assignment | Id, reason: str | None = None) -> Lease:
        """Decline the pair: it never comes back to this annotator, and costs no budget. Safe to repeat."""
        body = {"reason": reason} if reason is not None else None
        return self._model(
            Lease, "POST", f"/assignments/{_assignment_id(assignment)}/skip", json=body, idempotent=True
        )

    def release(self, assignment: Assignment | Id) -> Lease:
        """Give the pair back now (it may come to this annotator again). Safe to repeat."""
        return self._model(
            Lease, "POST", f"/assignments/{_assignment_id(assignment)}/release", idempotent=True
        )

    def renew(self, assignment: Assignment | Id) -> Lease:
        """Extend a live lease by the project's lease TTL; RenewalLimitError past the server's cap,
        LeaseExpiredError once it ended."""
        return self._model(Lease, "POST", f"/assignments/{_assignment_id(assignment)}/renew")

    def undo_label(self, assignment: Assignment | Id) -> None:
        """Withdraw your last label (within the server's undo window; UndoRefusedError otherwise)."""
        self._request("DELETE", f"/assignments/{_assignment_id(assignment)}/label")

    # -- internals -----------------------------------------------------------------------------------------

    def _columns(self, run: Export) -> list[str]:
        """The export's columns, from its manifest where the server keeps one."""
        try:
            columns = self.get_manifest(run.id).get("columns")
        except NotFoundError:
            columns = None
        if isinstance(columns, list) and columns:
            return [str(c) for c in columns]
        return ["prompt", "chosen", "rejected"]

    def _download(self, run: Export, target: Path, *, progress: bool, verify: bool) -> Path:
        response = self._request("GET", f"/exports/{run.id}/file", idempotent=True, stream=True)
        part: Path | None = None
        try:
            if target.is_dir():
                target = target / _file_name(response, run)
            part = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
            digest = hashlib.sha256()
            length = response.headers.get("Content-Length")
            with bar(progress, f"download {target.name}", unit="bytes") as shown:
                shown.update(completed=0, total=int(length) if length else None)
                done = 0
                with part.open("wb") as handle:
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        shown.update(completed=done)
            if verify and run.sha256 and digest.hexdigest() != run.sha256:
                raise ChecksumMismatchError(
                    status=None,
                    code="checksum_mismatch",
                    title="The downloaded file does not match the export's sha256",
                    detail=f"expected {run.sha256}, got {digest.hexdigest()}",
                )
            part.replace(target)
            part = None
            return target
        except httpx.TransportError as exc:
            raise _transport_error(exc) from exc
        finally:
            response.close()
            if part is not None:
                part.unlink(missing_ok=True)

    def _model(
        self, model: type[M], method: str, path: str, *, idempotent: bool = False, json: Any = None
    ) -> M:
        return model.model_validate(self._request(method, path, json=json, idempotent=idempotent).json())

    def _pages(
        self, path: str, filters: Mapping[str, Any] | None = None, page_size: int = 200
    ) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {**(filters or {}), "limit": page_size}
            if cursor:
                params["cursor"] = cursor
            page = self._request("GET", path, params=params, idempotent=True).json()
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = False,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterable[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send with retries; an error status becomes a RealAlignError carrying the problem+json."""
        attempt = 0
        while True:
            request = self._http.build_request(
                method, path, params=params, json=json, content=content, headers=headers
            )
            try:
                response = self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                # Nothing reached the server after a failed connect, so any request may go again.
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < self.retries and (idempotent or unsent):
                    time.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise _transport_error(exc) from exc
            if response.status_code < 400:
                return response
            if stream:
                response.read()
                response.close()
            error = _problem(response)
            retryable = response.status_code in (_RETRY_IDEMPOTENT if idempotent else _RETRY_ANY)
            retryable = retryable and error.code not in _NO_RETRY_CODES
            if retryable and attempt < self.retries:
                wait = error.retry_after if error.retry_after is not None else self._backoff(attempt)
                if wait <= self.max_retry_after:
                    time.sleep(wait)
                    attempt += 1
                    continue
            raise error

    @staticmethod
    def _backoff(attempt: int) -> float:
        return float(min(0.5 * 2**attempt, 30.0) * (0.5 + random.random() / 2))

    @staticmethod
    def _sleep_or_timeout(deadline: float | None, interval: float, what: str, timeout: float | None) -> None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeoutError(
                    status=None,
                    code="timeout",
                    title="Timed out",
                    detail=f"waited {timeout:g} s for {what}",
                )
            interval = min(interval, left)
        time.sleep(interval)


class _FileBody:
    """A file as a request body read a piece at a time; iterable again (from the start) for a retry."""

    def __init__(self, path: Path, sent: Callable[[int], None], piece: int = 256 * 1024) -> None:
        self.path, self.sent, self.piece = path, sent, piece

    def __iter__(self) -> Iterator[bytes]:
        done = 0
        self.sent(0)
        with self.path.open("rb") as handle:
            while chunk := handle.read(self.piece):
                yield chunk
                done += len(chunk)
                self.sent(done)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _problem(response: httpx.Response) -> RealAlignError:
    """The server's problem+json (or whatever it answered) as an exception."""
    body: dict[str, Any] = {}
    try:
        parsed = response.json()
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    detail = body.get("detail")
    if detail is None and not body:
        detail = response.text[:500] or None
    code = str(body.get("code") or "http_error")
    return error_for_status(response.status_code, code)(
        status=response.status_code,
        code=code,
        title=str(body.get("title") or response.reason_phrase or "HTTP error"),
        detail=None if detail is None else str(detail),
        field=first.get("field"),
        errors=errors,
        problem=body,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _assignment_id(assignment: Assignment | Id) -> str:
    return str(assignment.assignment_id if isinstance(assignment, Assignment) else assignment)


def _transport_error(exc: httpx.TransportError) -> TransportError:
    return TransportError(
        status=None, code="transport_error", title=type(exc).__name__, detail=str(exc) or repr(exc)
    )


_FILENAME = re.compile(r"""filename\*?=(?:UTF-8'')?"?([^";]+)"?""", re.IGNORECASE)


def _file_name(response: httpx.Response, run: Export) -> str:
    """The server's file name (Content-Disposition, else the export's file_name), else one from its format."""
    match = _FILENAME.search(response.headers.get("Content-Disposition", ""))
    if match:
        from urllib.parse import unquote

        name = Path(unquote(match.group(1))).name
        if name and name not in (".", ".."):
            return name
    if run.file_name and Path(run.file_name).name not in ("", ".", ".."):
        return Path(run.file_name).name
    suffix = ".parquet" if run.format == "parquet" else ".jsonl"
    if run.compression == "gzip" and run.format != "parquet":
        suffix += ".gz"
    return f"{run.project_id}-{run.id}{suffix}"
