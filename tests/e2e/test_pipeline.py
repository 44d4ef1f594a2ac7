"""End to end, on real parts: Postgres + Redis + a Celery worker process, and the embedded default."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.pipeline import run_pipeline
from tests.services import redis_url

pytestmark = [pytest.mark.integration, pytest.mark.embedding]


def test_pipeline_on_postgres_redis_and_a_celery_worker(celery_worker: Any, db: Any) -> None:
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    assert get_settings().broker_url == redis_url()
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        run_pipeline(client, db)
    assert celery_worker.poll() is None, "the worker process died"


def test_pipeline_on_the_embedded_default(sqlite_app: Any) -> None:
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    settings = get_settings()
    assert settings.is_sqlite
    assert settings.embedded_tasks
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        run_pipeline(client, sqlite_app)
