"""Domain errors with stable codes, rendered as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """The RFC 9457 body every 4xx/5xx of this API uses."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    instance: str | None = None
    errors: list[FieldError] | None = None


class DomainError(Exception):
    """An expected failure with an HTTP status and a stable machine-readable code."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = headers
        self.errors = (
            errors
            if errors is not None
            else ([FieldError(field=field, message=detail or "")] if field else None)
        )


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Missing or invalid API key"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    title = "Missing or wrong CSRF token for this session"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict"


class LeaseExpired(Conflict):
    code = "lease_expired"
    title = "The assignment's lease has expired or was taken over"


class AlreadyLabeled(Conflict):
    code = "already_labeled"
    title = "This assignment already has a different label"


class IndexNotReady(Conflict):
    code = "index_not_ready"
    title = "The neighbour index for this project is not built yet"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for a different request"


class RenewalLimit(Conflict):
    code = "renewal_limit"
    title = "The lease was renewed as often as allowed"


class UndoRefused(Conflict):
    code = "undo_refused"
    title = "Only your last label can be withdrawn, within the undo window"


class InvalidInput(DomainError):
    status = 422
    code = "invalid_input"
    title = "Invalid input"


class TooManyRequests(DomainError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class ActiveLeaseLimit(TooManyRequests):
    code = "active_lease_limit"
    title = "Too many live leases for this annotator"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body = Problem(
        type=f"urn:real-align:problem:{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        instance=instance,
        errors=errors,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            # pydantic adds the union member's type name (`str`, `list[...]`, a model's class name) to the
            # location; it is noise to a user (the API's own field names are snake_case).
            if item in {"str", "function-after[_check(), str]"} or str(item).startswith(
                ("function-", "list[")
            ):
                continue
            if isinstance(item, str) and item[:1].isupper() and item.isidentifier():
                continue
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """The field a pydantic error location names, as the 422 problem's ``errors[].field`` says it."""
    return _loc_to_field(loc)


def install_handlers(app: FastAPI) -> None:
    """Render every error as problem+json."""

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.code,
            exc.title,
            exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [FieldError(field=_loc_to_field(e["loc"]), message=e["msg"]) for e in exc.errors()]
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        return problem_response(
            422,
            "invalid_input",
            "Invalid input",
            f"invalid field(s): {fields}",
            instance=request.url.path,
            errors=errors,
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # The database is down, restarting, or timed out: transient, so 503 and a retry hint, never 500.
        # A broken pooled connection also invalidates the pool, so the next request reconnects.
        log.warning(
            "database.unavailable", extra={"error": type(exc.orig).__name__, "path": request.url.path}
        )
        return problem_response(
            503,
            "database_unavailable",
            "Database unavailable",
            "the database did not answer; nothing was stored by this request, retry shortly",
            instance=request.url.path,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return problem_response(
            exc.status_code, code, str(exc.detail), None, instance=request.url.path, headers=headers or None
        )


def _allowed_methods(request: Request) -> str:
    """Every method any route offers on this path (Starlette reports only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))
