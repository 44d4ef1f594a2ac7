"""The request plumbing as one ASGI layer: a body-size cap (413 before the body is parsed), SQLite's one
writer, the request id, request metrics and a problem+json 500 for the unexpected; the queue's claim and
label served from there (app/queue/edge.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logging as logcontext
from app import metrics
from app.errors import problem_response

if TYPE_CHECKING:
    from app.queue.edge import QueueRoutes

log = logging.getLogger(__name__)


_PROJECT_PATH = re.compile(
    r"^/v1/projects/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?:/|$)"
)


# Routes that read their body as a stream, a piece at a time (the JSONL upload): their cap is their own.
STREAMED_PATH = re.compile(r"^/v1/projects/[^/]+/prompts:upload$")


class EdgeMiddleware:
    """Every request's plumbing as one plain ASGI layer (a layer per concern cost the queue's claim and label
    a coroutine frame and a send wrapper each; docs/benchmarks.md, "Annotation queue"), in this order:

    1. **Body-size cap**: bodies over ``max_bytes`` are refused 413 by Content-Length up front, or while
       streaming (chunked), at once, from inside the receive call that crossed the limit; whatever the app
       does with the interrupted read (FastAPI turns it into a 400) is dropped, not sent. Routes that stream
       their body (``STREAMED_PATH``) hold only a piece of it at a time: they get ``streamed_max_bytes``
       instead (None: no cap). The 413 is answered from here, before the request id and the metrics.
    2. **SQLite** (``serialize_sqlite``): one database request at a time, queued on the event loop. SQLite
       has one writer; every transaction here starts with BEGIN IMMEDIATE. A request holds that lock from its
       first query to its commit, across several threadpool hops (auth, route, serialisation, commit). With
       more concurrent requests than threadpool threads, the holder can wait for a thread that every other
       request occupies while waiting for its lock: a deadlock until the busy timeout. Queuing requests on
       the event loop (no thread held while waiting) removes it; SQLite would serialise the writes anyway.
       File downloads are left out so a long download does not stall annotators; a streamed upload finds the
       lock in its scope (``SQLITE_LOCK``) and takes it around each batch it stores.
    3. **Request id**: X-Request-ID echoed (its first 128 bytes) or made, on the response and on every log
       line of the request and every task it sends (app/logging.py), with ``project_id`` for
       ``/v1/projects/{id}/...``.
    4. **Metrics**: each request timed by its route template (app/metrics.py).
    5. **The unexpected**: an exception no handler took is logged with its traceback and answered 500
       problem+json (with the request id). Starlette's ServerErrorMiddleware answers text/plain and re-raises,
       and uvicorn then closes the connection; here the exception ends with the answer, so a keep-alive
       connection stays usable. When the response had already started there is nothing to answer with, and
       it is re-raised.

    ``queue_routes`` (app/queue/edge.py) then serves the annotation queue's claim and label itself when it
    can; every other request goes on to the app.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        streamed_max_bytes: int | None = None,
        serialize_sqlite: bool = False,
        queue_routes: QueueRoutes | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed_max_bytes = streamed_max_bytes
        self.serialize_sqlite = serialize_sqlite
        self.queue_routes = queue_routes
        self._lock: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        streamed = ":upload" in path and STREAMED_PATH.match(path) is not None
        max_bytes = self.streamed_max_bytes if streamed else self.max_bytes
        if max_bytes is None:  # a streamed route without a cap of its own
            await self._serialized(scope, receive, send, path, streamed)
            return
        length = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                length = value  # the last one, as a dict of the headers would have it
        if length is not None and length.isdigit() and int(length) > max_bytes:
            await _too_large(scope, receive, send, max_bytes)
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
                        await _too_large(scope, receive, send, max_bytes)
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
            await self._serialized(scope, limited_receive, guarded_send, path, streamed)
        except _TooLarge:
            if not refused and not started:
                await _too_large(scope, receive, send, max_bytes)

    async def _serialized(
        self, scope: Scope, receive: Receive, send: Send, path: str, streamed: bool
    ) -> None:
        if not self.serialize_sqlite or not path.startswith("/v1/") or path.endswith("/file"):
            await self._handle(scope, receive, send, path)
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        if streamed:
            # A long upload takes the lock for each unit of work it runs, not for the whole stream.
            scope[SQLITE_LOCK] = self._lock
            await self._handle(scope, receive, send, path)
            return
        async with self._lock:
            await self._handle(scope, receive, send, path)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        request_id = b""
        for name, value in scope.get("headers") or ():
            if name == b"x-request-id":
                request_id = value[:128]
                break
        request_id = request_id or uuid.uuid4().hex.encode()
        header = (b"x-request-id", request_id)
        started = False
        status = 500

        async def edge_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        found = _PROJECT_PATH.match(path)
        project_id = found.group(1).lower() if found else None
        queue_routes = self.queue_routes
        # Every log line of the request, and every task it sends, carries its id (app/logging.py).
        with logcontext.bound(request_id=request_id.decode("latin-1"), project_id=project_id):
            began = time.perf_counter()
            try:
                if queue_routes is not None and queue_routes.may_serve(scope):
                    await queue_routes.serve(scope, receive, edge_send, self.app)
                else:
                    await self.app(scope, receive, edge_send)
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
                await response(scope, receive, edge_send)
            finally:
                metrics.REQUEST_SECONDS.labels(
                    scope.get("method", ""), metrics.route_template(scope), str(status)
                ).observe(time.perf_counter() - began)


async def _too_large(scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
    response = problem_response(
        413,
        "payload_too_large",
        "Request body too large",
        f"the body is over {max_bytes} bytes; split the batch",
    )
    await response(scope, receive, send)


class _TooLarge(Exception):
    pass


SQLITE_LOCK = "real_align.sqlite_lock"  # the scope key under which a streamed route finds the lock
