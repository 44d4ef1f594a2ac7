"""Request id, a body-size cap (413 before the body is parsed) and a problem+json 500 for the unexpected."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logging as logcontext
from app.errors import problem_response

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Echo or create X-Request-ID so a client's report can be matched to our logs.

    Plain ASGI (not BaseHTTPMiddleware, whose task group and body streams cost more CPU per request than
    the annotation queue's whole claim).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                request_id = value[:128]
                break
        request_id = request_id or uuid.uuid4().hex.encode()
        header = (b"x-request-id", request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        # Every log line of the request, and every task it sends, carries its id (app/logging.py).
        found = _PROJECT_PATH.match(scope.get("path", ""))
        project_id = found.group(1).lower() if found else None
        with logcontext.bound(request_id=request_id.decode("latin-1"), project_id=project_id):
            await self.app(scope, receive, send_with_id)


_PROJECT_PATH = re.compile(
    r"^/v1/projects/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?:/|$)"
)


# Routes that read their body as a stream, a piece at a time (the JSONL upload): their cap is their own.
STREAMED_PATH = re.compile(r"^/v1/projects/[^/]+/prompts:upload$")


class BodySizeLimitMiddleware:
    """Refuse bodies over max_bytes: by Content-Length up front, or while streaming (chunked).

    A streamed body over the limit is answered 413 at once, from inside the receive call that crossed it;
    whatever the app does with the interrupted read (FastAPI turns it into a 400) is dropped, not sent.
    Routes that stream their body (``STREAMED_PATH``) hold only a piece of it at a time: they get
    ``streamed_max_bytes`` instead (None: no cap).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, streamed_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_max_bytes = streamed_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.max_bytes
        if STREAMED_PATH.match(scope.get("path", "")):
            if self.streamed_max_bytes is None:
                await self.app(scope, receive, send)
                return
            max_bytes = self.streamed_max_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            await self._too_large(scope, receive, send, max_bytes)
            return
        received = 0
        started = refused = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    if not started and not refused:
                        refused = True
                        await self._too_large(scope, receive, send, max_bytes)
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not refused and not started:
                await self._too_large(scope, receive, send, max_bytes)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            "Request body too large",
            f"the body is over {max_bytes} bytes; split the batch",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class UnexpectedErrorMiddleware:
    """An exception no handler took: logged with its traceback, answered 500 problem+json.

    Starlette's ServerErrorMiddleware answers text/plain and re-raises, and uvicorn then closes the
    connection; here the exception ends with the answer, so a keep-alive connection stays usable. When the
    response had already started there is nothing to answer with, and it is re-raised.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            log.exception("request.unhandled_error", extra={"path": scope.get("path")})
            response = problem_response(
                500,
                "internal_error",
                "Internal server error",
                "the server failed on this request; it has been logged",
                instance=scope.get("path"),
            )
            await response(scope, receive, send)


SQLITE_LOCK = "real_align.sqlite_lock"  # the scope key under which a streamed route finds the lock


class SQLiteSerializeMiddleware:
    """On SQLite, run one database request at a time, queued on the event loop.

    SQLite has one writer; every transaction here starts with BEGIN IMMEDIATE. A request holds that lock from
    its first query to its commit, across several threadpool hops (auth, route, serialisation, commit). With
    more concurrent requests than threadpool threads, the holder can wait for a thread that every other
    request occupies while waiting for its lock: a deadlock until the busy timeout. Queuing requests on the
    event loop (no thread held while waiting) removes it; SQLite would serialise the writes anyway. File
    downloads are left out so a long download does not stall annotators; a streamed upload finds the lock
    in its scope (``SQLITE_LOCK``) and takes it around each batch it stores.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1/") or path.endswith("/file"):
            await self.app(scope, receive, send)
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        if STREAMED_PATH.match(path):
            # A long upload takes the lock for each unit of work it runs, not for the whole stream.
            scope[SQLITE_LOCK] = self._lock
            await self.app(scope, receive, send)
            return
        async with self._lock:
            await self.app(scope, receive, send)
