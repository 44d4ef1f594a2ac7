"""A big ingest on the production shape: every chunk is paired by a warm worker, with no reconciler.

The embedding sends used to go out when ingest's SAVEPOINT was released, before COMMIT: a warm worker
took the first message within milliseconds, found no prompts, and that chunk waited minutes for
maintenance.reconcile.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.pipeline import load_items, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

log = logging.getLogger(__name__)


def three_hundred_items() -> list[dict[str, Any]]:
    """The 20 AlpacaEval prompts (4 responses each) fifteen times over, under new external ids: 300 prompts
    in 5 embedding chunks, with few distinct texts, so the model's speed on a loaded machine is not what
    this measures."""
    return [
        {**item, "external_id": f"{item['external_id']}-{copy}"}
        for copy in range(15)
        for item in load_items()
    ]


def test_three_hundred_prompts_in_one_request_are_all_paired_without_the_reconciler(
    celery_worker: Any, db: Any
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    items = three_hundred_items()
    assert len(items) == 300
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        pid = client.post("/v1/projects", json={"name": "big-ingest"}).json()["id"]

        def paired(job_id: str) -> bool:
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] != "failed", job
            return bool(job["status"] == "succeeded")

        # Warm the worker (model loaded, waiting on the queue): the state in which it took messages early.
        warm = client.post(f"/v1/projects/{pid}/prompts", json={"items": items[:1]}).json()
        wait_for(lambda: paired(warm["job_id"]), 240, "the warm-up prompt")
        started = time.monotonic()
        ingest = client.post(f"/v1/projects/{pid}/prompts", json={"items": items[1:]}).json()
        assert ingest["accepted"] == 299
        try:
            wait_for(lambda: paired(ingest["job_id"]), 60, "299 prompts to be paired")
        finally:
            job = client.get(f"/v1/jobs/{ingest['job_id']}").json()
            log.warning(
                "celery ingest: %s/%s paired after %.1f s",
                job["done"],
                job["total"],
                time.monotonic() - started,
            )
        stats = client.get(f"/v1/projects/{pid}/stats").json()
        assert stats["pairs"] == 300
    assert celery_worker.poll() is None, "the worker process died"
