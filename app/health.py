"""/readyz: whether this API process can do its work now (the database and the broker answer).

/healthz (app/main.py) says the process serves and reaches its database; /readyz adds the broker, each
check bounded by READY_TIMEOUT_S, and answers 503 problem+json naming what is down, so a load balancer or
compose healthcheck takes the process out while a dependency is away (a request then would 503 anyway).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.config import get_settings
from app.errors import FieldError, problem_response

READY_TIMEOUT_S = 2.0

router = APIRouter(include_in_schema=False)


def _database() -> None:
    from app.db.session import get_database

    with get_database().engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _broker(url: str) -> None:
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(
            url, socket_connect_timeout=READY_TIMEOUT_S, socket_timeout=READY_TIMEOUT_S
        )
        try:
            client.ping()
        finally:
            client.close()
        return
    from kombu.connection import Connection

    with Connection(url, connect_timeout=READY_TIMEOUT_S) as connection:  # type: ignore[no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=READY_TIMEOUT_S)


def checks() -> dict[str, str | None]:
    """Each dependency: None when it answers, else why not ("broker" is absent on the embedded default)."""
    found: dict[str, str | None] = {}
    broker_url = get_settings().broker_url
    probes: list[tuple[str, Any]] = [("database", _database)]
    if broker_url:
        probes.append(("broker", lambda: _broker(broker_url)))
    for name, probe in probes:
        try:
            probe()
            found[name] = None
        except Exception as exc:
            found[name] = (
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
    return found


@router.get("/readyz")
def readyz() -> JSONResponse:
    """200 {"status": "ready", "checks": {...}} or 503 problem+json naming each dependency that is down."""
    found = checks()
    down = {name: why for name, why in found.items() if why is not None}
    if down:
        return problem_response(
            503,
            "not_ready",
            "Not ready",
            "unreachable: " + ", ".join(sorted(down)),
            errors=[FieldError(field=name, message=why) for name, why in sorted(down.items())],
            headers={"Retry-After": "5"},
        )
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name in found}})
