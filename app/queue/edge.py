"""The queue's claim and label served from the edge middleware (app/middleware.py), past FastAPI's routing.

`POST /v1/projects/{id}/queue/claim` and `POST /v1/assignments/{id}/label` are what annotators send all day.
Through FastAPI, a quarter of the server's CPU for one of them went to the layers around the route: matching
every included router's routes, the exception and exit-stack layers, building a Request and solving the
dependencies (docs/benchmarks.md, "Annotation queue"). ``QueueRoutes.serve`` runs the route's own work
(``serve_claim`` / ``serve_label`` in app/queue/router.py: the same credentials, clock, limiter, thread hop
and answer) straight from the edge, for a request whose every check it makes exactly as FastAPI would:

- POST on the exact path, the id in canonical UUID form, no root path, no dependency overrides (tests that
  move the clock go through FastAPI), and not SQLite (its lock is the edge's, around the app);
- a body given by Content-Length, or none (chunked bodies go to FastAPI);
- the bearer key read as HTTPBearer reads it; no Cookie header (a browser's session and its CSRF check go
  through FastAPI);
- a JSON object body (Content-Type absent or application/json) that validates, or for a claim no body; an
  Idempotency-Key, if any, of at most 200 printable ASCII characters.

Anything else goes to the FastAPI app with the body it read replayed, so every 405, 422 and odd request is
answered by FastAPI itself. An exception from the work is answered by the app's own exception handlers
(app/errors.py), as FastAPI's ExceptionMiddleware would; the matched route is put in the scope as the
router would (``route``, ``endpoint``, ``path_params``: the request metrics' route template).
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.clock import get_now
from app.auth.guard import Credentials
from app.config import get_settings
from app.queue import router
from app.queue.schemas import ClaimRequest, LabelRequest

_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_CLAIM_PATH = re.compile(f"/v1/projects/({_UUID})/queue/claim")
_LABEL_PATH = re.compile(f"/v1/assignments/({_UUID})/label")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]+")  # the route's Header(pattern=..., max_length=200)
_IDEMPOTENCY_KEY_MAX = 200
_Body = TypeVar("_Body", bound=BaseModel)


class _Fallback(Exception):
    """Not a request this path answers exactly as FastAPI would: FastAPI takes it."""


def _route(endpoint: Any) -> APIRoute:
    for route in router.router.routes:
        if isinstance(route, APIRoute) and route.endpoint is endpoint:
            return route
    raise LookupError(f"no route for {endpoint!r} in app/queue/router.py")


class QueueRoutes:
    """Claim and label for ``app`` (the FastAPI app the edge middleware wraps)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.claim_route = _route(router.claim)
        self.label_route = _route(router.label)

    def may_serve(self, scope: Scope) -> bool:
        """A cheap first look: only these two POST routes are worth a closer one."""
        path: str = scope["path"]
        return scope["method"] == "POST" and (path.endswith("/queue/claim") or path.endswith("/label"))

    async def serve(self, scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        """Answer the request here, or hand it (with whatever body was read) to ``app``."""
        messages: list[Message] = []
        try:
            await self._serve(scope, receive, send, messages)
        except _Fallback:
            pending = list(messages)

            async def replay() -> Message:
                return pending.pop(0) if pending else await receive()

            await app(scope, replay, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, messages: list[Message]) -> None:
        path: str = scope["path"]
        found = _CLAIM_PATH.fullmatch(path)
        is_claim = found is not None
        if found is None:
            found = _LABEL_PATH.fullmatch(path)
        if (
            found is None
            or scope.get("root_path")
            or self.app.dependency_overrides
            or get_settings().is_sqlite
        ):
            raise _Fallback
        authorization = csrf_token = idempotency_key = content_type = None
        sized = False
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"content-length":
                sized = True
            elif name == b"transfer-encoding" or name == b"cookie":
                raise _Fallback
            elif name == b"x-csrf-token":
                if csrf_token is None:
                    csrf_token = value.decode("latin-1")
            elif name == b"idempotency-key":
                if idempotency_key is None:
                    idempotency_key = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        if idempotency_key is not None and (
            len(idempotency_key) > _IDEMPOTENCY_KEY_MAX or not _IDEMPOTENCY_KEY.fullmatch(idempotency_key)
        ):
            raise _Fallback
        raw = await _read_body(receive, messages) if sized else b""
        item_id = uuid.UUID(found.group(1))
        credentials = Credentials(
            key=_bearer(authorization),
            bootstrap_key=self.app.state.admin_key,
            client=scope["client"][0] if scope.get("client") else "unknown",
            session=None,
            csrf_token=csrf_token,
            changes_state=True,
        )
        claim_body: ClaimRequest | None = None
        if is_claim:
            claim_body = _parse(raw, content_type, ClaimRequest) if raw else None
        elif not raw:
            raise _Fallback  # FastAPI's 422: the body is missing
        else:
            label_body = _parse(raw, content_type, LabelRequest)
        route = self.claim_route if is_claim else self.label_route
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {"project_id" if is_claim else "assignment_id": found.group(1)}
        limiter = router.limiter_of(self.app.state)
        response: Response
        try:
            if is_claim:
                response = await router.serve_claim(
                    limiter, credentials, item_id, await get_now(), claim_body
                )
            else:
                response = await router.serve_label(
                    limiter, credentials, item_id, label_body, await get_now(), idempotency_key
                )
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            request = Request(scope, receive)
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Any:
        """The app's exception handler for this exception's class, as Starlette's ExceptionMiddleware looks
        it up (by the class's MRO; 500 and Exception are the server-error layer's, not here)."""
        handlers = self.app.exception_handlers
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None


async def _read_body(receive: Receive, messages: list[Message]) -> bytes:
    """The whole body (its size is capped by the edge middleware), every message kept for a replay."""
    chunks = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":  # the client left: FastAPI's own handling
            raise _Fallback
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _bearer(authorization: str | None) -> str | None:
    """The key as fastapi.security.HTTPBearer(auto_error=False) reads it (None when absent or not Bearer)."""
    if not authorization:
        return None
    scheme, _, param = authorization.partition(" ")
    credentials = param.strip()
    if not (scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def _parse(raw: bytes, content_type: str | None, model: type[_Body]) -> _Body:
    """A JSON object body, as FastAPI reads and validates it; anything FastAPI would refuse falls back."""
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise _Fallback
    try:
        value = json.loads(raw)
    except ValueError:
        raise _Fallback from None
    if not isinstance(value, dict):
        raise _Fallback
    try:
        return model.model_validate(value)
    except ValidationError:
        raise _Fallback from None
