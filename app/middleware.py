"""Request id and a body-size cap (413 before the body is parsed)."""

from __future__ import annotations

import asyncio
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logging as logcontext
from app.errors import problem_response


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


class BodySizeLimitMiddleware:
    """Refuse bodies over max_bytes: by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "payload_too_large",
            "Request body too large",
            f"the body is over {self.max_bytes} bytes; split the batch",
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class SQLiteSerializeMiddleware:
    """On SQLite, run one database request at a time, queued on the event loop.

    SQLite has one writer; every transaction here starts with BEGIN IMMEDIATE. A request holds that lock from
    its first query to its commit, across several threadpool hops (auth, route, serialisation, commit). With
    more concurrent requests than threadpool threads, the holder can wait for a thread that every other
    request occupies while waiting for its lock: a deadlock until the busy timeout. Queuing requests on the
    event loop (no thread held while waiting) removes it; SQLite would serialise the writes anyway. File
    downloads are left out so a long download does not stall annotators.
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
        async with self._lock:
            await self.app(scope, receive, send)
