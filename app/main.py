"""The FastAPI application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

import app as package
from app import health, metrics
from app.api.deps import configured_admin_key
from app.api.router import api_router
from app.apidocs import swagger
from app.background import get_runner
from app.config import get_settings
from app.db.session import get_database
from app.errors import install_handlers
from app.logging import configure_logging
from app.middleware import EdgeMiddleware
from app.queue.edge import QueueRoutes
from app.web.router import mount_web

log = logging.getLogger(__name__)


def create_app(*, admin_key: str | None = None, start_runner: bool | None = None) -> FastAPI:
    """Build the app. The embedded task runner starts with it when no broker is configured."""
    settings = get_settings()
    configure_logging(settings)
    run_tasks_here = settings.embedded_tasks if start_runner is None else start_runner

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_tasks_here:
            get_runner().start()
        yield
        if run_tasks_here:
            get_runner().stop()

    docs = settings.env != "prod"
    app = FastAPI(
        title="real-align",
        version=package.__version__,
        description="Choose the LLM response pairs worth a human's judgment (REAL), collect labels, "
        "ship DPO data.",
        lifespan=lifespan,
        openapi_url="/v1/openapi.json",
        docs_url=None,  # /docs is swagger.install's: FastAPI's own page loads Swagger UI from a CDN
        redoc_url=None,
    )
    if docs:
        swagger.install(app)
    app.state.admin_key = admin_key if admin_key is not None else configured_admin_key()
    install_handlers(app)
    # One plain ASGI layer for the body cap, SQLite's writer lock, the request id, the metrics and the 500
    # (app/middleware.py); it serves the queue's claim and label itself when it can (app/queue/edge.py).
    app.add_middleware(
        EdgeMiddleware,
        max_bytes=settings.max_body_bytes,
        streamed_max_bytes=settings.max_upload_bytes,
        serialize_sqlite=settings.is_sqlite,
        queue_routes=QueueRoutes(app),
    )
    app.include_router(api_router)
    app.include_router(health.router)  # /readyz
    app.include_router(metrics.router)  # /metrics
    mount_web(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with get_database().engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app
