"""Logging for every process (API, worker, beat, CLI): one configuration, context carried into tasks.

``configure_logging()`` sets the root logger up once per process: JSON lines when ``REAL_LOG_JSON`` is on
(the default in prod), else a readable ``key=value`` line. Both show every field a call passes with
``extra=`` and the fields bound to the running request or task:

- a request binds ``request_id`` (RequestIdMiddleware) and, for ``/v1/projects/{id}/...``, ``project_id``;
- a task binds ``task``, ``task_id`` and ``project_id`` (its ``project_id`` argument, else the sender's) and
  the ``request_id`` of the request that sent it: Celery carries them in message headers
  (``before_task_publish`` / ``task_prerun`` below), the embedded runner in its queue.

The context is one mutable dict per request or task in a ContextVar: a request's thread hops run in copies
of its context, and a field added in one hop (``annotate``) is seen by the next, because they share the dict.
Stdlib logging, not structlog: the 40-odd ``log.info("event", extra={...})`` calls stay as they are, and
uvicorn's, Celery's and SQLAlchemy's own records go through the same formatter.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from app.config import Settings, get_settings

# Header names on Celery messages (custom headers reach the worker's task.request as attributes).
REQUEST_ID_HEADER = "real_request_id"
PROJECT_ID_HEADER = "real_project_id"
# Fields shown first, in this order, when bound.
CONTEXT_FIELDS = ("request_id", "task", "task_id", "project_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("real_align_log_context", default=None)
# Every attribute a plain LogRecord has: anything else on a record came from `extra=`.
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def current() -> dict[str, Any]:
    """The fields bound to the running request or task (a copy)."""
    return dict(_context.get() or {})


@contextmanager
def bound(**fields: Any) -> Iterator[dict[str, Any]]:
    """A new scope (a request, a task) with these fields on top of the enclosing ones."""
    scope = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(scope)
    try:
        yield scope
    finally:
        _context.reset(token)


def annotate(**fields: Any) -> None:
    """Add fields to the running scope, seen by the rest of it (other thread hops of the same request)."""
    scope = _context.get()
    if scope is not None:
        scope.update({k: v for k, v in fields.items() if v is not None})


def task_headers() -> dict[str, str]:
    """What a task sent now carries of its sender's context (Celery message headers)."""
    scope = _context.get() or {}
    headers = {}
    if scope.get("request_id"):
        headers[REQUEST_ID_HEADER] = str(scope["request_id"])
    if scope.get("project_id"):
        headers[PROJECT_ID_HEADER] = str(scope["project_id"])
    return headers


@contextmanager
def task_scope(
    name: str, task_id: str | None, kwargs: Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """The scope of one task run: its name and id, its project (argument, else the sender's) and the
    request that sent it."""
    sent = headers or {}
    project = kwargs.get("project_id") or sent.get(PROJECT_ID_HEADER)
    with bound(
        task=name,
        task_id=task_id or uuid.uuid4().hex,
        project_id=str(project) if project else None,
        request_id=sent.get(REQUEST_ID_HEADER),
    ) as scope:
        yield scope


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's context and extra fields, context first."""
    scope: dict[str, Any] = getattr(record, "_context", None) or {}
    extras = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
    ordered = {k: scope[k] for k in CONTEXT_FIELDS if k in scope}
    ordered.update({k: v for k, v in scope.items() if k not in ordered})
    ordered.update(extras)
    return ordered


class ContextFilter(logging.Filter):
    """Stamps the running request's or task's fields on each record as it is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_context"):
            record._context = current()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, event (the message), context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return json.dumps(text, ensure_ascii=False) if not text or any(c in text for c in ' ="\n') else text


class ConsoleFormatter(logging.Formatter):
    """A readable line: time, level, logger, event, then key=value for the context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<7}", record.name, record.getMessage()]
        parts += [f"{key}={_console_value(value)}" for key, value in _fields(record).items()]
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (found again by its type when called twice). Without a
    stream of its own it writes to whatever sys.stderr is at the time (a test's capture, a redirect)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream or sys.stderr)
        self._follow_stderr = stream is None

    def emit(self, record: logging.LogRecord) -> None:
        if self._follow_stderr:
            self.stream = sys.stderr
        super().emit(record)


def json_enabled(settings: Settings) -> bool:
    """REAL_LOG_JSON; unset, JSON in prod and key=value elsewhere."""
    return settings.log_json if settings.log_json is not None else settings.env == "prod"


def configure_logging(settings: Settings | None = None, stream: IO[str] | None = None) -> logging.Handler:
    """Route every logger through one handler on the root logger (idempotent: a second call replaces it)."""
    settings = settings or get_settings()
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if json_enabled(settings) else ConsoleFormatter())
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # httpx logs every request at INFO: the client commands' output and the webhook sender's lines.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's loggers propagate to the root (uvicorn runs with log_config=None).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    _connect_celery()
    return handler


_celery_connected = False


def _connect_celery() -> None:
    """Carry the context in the headers of every task this process sends, and bind it in every task this
    process runs (a worker); Celery leaves the logging set up here alone (setup_logging has a receiver)."""
    global _celery_connected
    if _celery_connected:
        return
    from celery import signals

    signals.before_task_publish.connect(_publish, weak=False)
    signals.task_prerun.connect(_prerun, weak=False)
    signals.task_postrun.connect(_postrun, weak=False)
    signals.setup_logging.connect(_keep_logging, weak=False)
    _celery_connected = True


def _publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is not None:
        for key, value in task_headers().items():
            headers.setdefault(key, value)


_task_scopes: dict[str, Any] = {}


def _prerun(
    task_id: str | None = None, task: Any = None, kwargs: Mapping[str, Any] | None = None, **_: Any
) -> None:
    request = getattr(task, "request", None)
    headers = {
        key: getattr(request, key, None) or (getattr(request, "headers", None) or {}).get(key)
        for key in (REQUEST_ID_HEADER, PROJECT_ID_HEADER)
    }
    scope = task_scope(getattr(task, "name", "?"), task_id, kwargs or {}, headers)
    scope.__enter__()
    _task_scopes[task_id or ""] = scope


def _postrun(task_id: str | None = None, **_: Any) -> None:
    scope = _task_scopes.pop(task_id or "", None)
    if scope is not None:
        scope.__exit__(None, None, None)


def _keep_logging(**_: Any) -> None:
    """A receiver of Celery's setup_logging: its presence stops the worker from reconfiguring logging."""
