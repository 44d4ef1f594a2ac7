"""Recovery in seconds on the production shape: real Celery worker and beat processes, a Redis of the test's
own (so stopping it disturbs no one), the reconciler off. Work a killed worker held, and work whose send
failed while Redis was down, resumes within 30 s of the fault ending, through the task outbox."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.embeddings.models import Embedding
from app.outbox.models import TaskOutbox
from app.prompts.models import Prompt, PromptStatus
from tests.conftest import ADMIN_KEY, EXPORT_DIR, PG_URL, _reset_app_state
from tests.e2e.pipeline import load_items, wait_for
from tests.processes import Redis, Shape

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

log = logging.getLogger(__name__)
RESUME_GOAL_S = 30.0


@pytest.fixture
def production(db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Redis, Shape]]:
    redis = Redis(tmp_path)
    redis.start()
    env = {
        **os.environ,
        "REAL_DATABASE_URL": PG_URL or "",
        "REAL_BROKER_URL": redis.url,
        "REAL_EXPORT_DIR": str(EXPORT_DIR),
        # The reconciler is off: only the outbox may bring the work back.
        "REAL_RECONCILE_AFTER_SECONDS": "86400",
        "REAL_EMBED_CHUNK_PROMPTS": "8",
        "REAL_LOG_LEVEL": "INFO",
    }
    monkeypatch.setenv("REAL_BROKER_URL", redis.url)
    monkeypatch.setenv("REAL_RECONCILE_AFTER_SECONDS", "86400")
    monkeypatch.setenv("REAL_EMBED_CHUNK_PROMPTS", "8")
    _reset_app_state()
    shape = Shape(env, tmp_path)
    try:
        yield redis, shape
    finally:
        shape.stop()
        redis.stop()
        _reset_app_state()


def items(copies: int) -> list[dict[str, Any]]:
    return [
        {**item, "external_id": f"{item['external_id']}-{n}"} for n in range(copies) for item in load_items()
    ]


def paired(db: Any, project_id: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(Prompt)
                .where(Prompt.project_id == project_id, Prompt.status != PromptStatus.PENDING)
            )
            or 0
        )


def check_nothing_lost(db: Any, client: Any, pid: str, prompts: int) -> None:
    stats = client.get(f"/v1/projects/{pid}/stats").json()
    assert stats["pairs"] == stats["prompts"] == prompts
    assert stats["embedded"] == stats["responses"]
    with db.session() as s:
        texts = s.scalar(select(func.count(func.distinct(Embedding.text_sha256)))) or 0
        rows = s.scalar(select(func.count()).select_from(Embedding)) or 0
        assert rows == texts  # one embedding per text, never two

    def outbox_empty() -> bool:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(TaskOutbox)) == 0

    # Every task finishes, the ones pairing sent on (aggregates, the neighbour index) included.
    wait_for(outbox_empty, 120, "every outbox task to finish")


def test_a_worker_killed_mid_embedding_is_resumed_within_30_s(production: Any, db: Any) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    _redis, shape = production
    shape.start_beat()
    shape.start_worker()
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        pid = client.post("/v1/projects", json={"name": "recovery"}).json()["id"]
        batch = items(3)  # 60 prompts in chunks of 8: several embedding tasks
        assert client.post(f"/v1/projects/{pid}/prompts", json={"items": batch}).json()["accepted"] == 60

        def held() -> list[Any]:
            with db.session() as s:
                return list(
                    s.scalars(
                        select(TaskOutbox.id).where(
                            TaskOutbox.task == "embeddings.embed_prompts", TaskOutbox.run_token.is_not(None)
                        )
                    )
                )

        wait_for(held, 240, "the worker to take an embedding task")  # the model loads first
        shape.kill_worker()
        orphans = held()  # the tasks the killed worker held
        done_before = paired(db, pid)
        assert orphans
        assert done_before < 60, "the work finished before the kill"
        shape.start_worker()
        restarted = time.monotonic()

        def resent() -> bool:
            with db.session() as s:
                rows = {r.id: r for r in s.scalars(select(TaskOutbox).where(TaskOutbox.id.in_(orphans)))}
            return all(row_id not in rows or rows[row_id].resends >= 1 for row_id in orphans)

        # Resumed: the killed worker's tasks are sent again (outbox.relay) and the new worker makes progress.
        wait_for(resent, 180, "the killed worker's tasks to be sent again")
        resent_after = time.monotonic() - restarted
        wait_for(lambda: paired(db, pid) > done_before, 180, "the new worker to pair a prompt")
        progress_after = time.monotonic() - restarted
        resumed = max(resent_after, progress_after)
        wait_for(lambda: paired(db, pid) == 60, 180, "every prompt paired after the restart")
        log.warning(
            "worker SIGKILL: %d task(s) held, %d/60 prompts paired at the kill; after the restart the held "
            "tasks were sent again at %.1f s, the first prompt paired at %.1f s, all paired at %.1f s",
            len(orphans),
            done_before,
            resent_after,
            progress_after,
            time.monotonic() - restarted,
        )
        check_nothing_lost(db, client, pid, 60)
    assert resumed < RESUME_GOAL_S


def test_a_redis_outage_loses_nothing_and_work_resumes_within_30_s(production: Any, db: Any) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    redis, shape = production
    shape.start_beat()
    shape.start_worker()
    app = create_app(admin_key=ADMIN_KEY)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        pid = client.post("/v1/projects", json={"name": "outage"}).json()["id"]
        warm = items(1)[:1]
        client.post(f"/v1/projects/{pid}/prompts", json={"items": warm})
        wait_for(lambda: paired(db, pid) == 1, 240, "the warm-up prompt")  # the worker is up, model loaded
        redis.stop()
        down_at = time.monotonic()
        batch = [{**item, "external_id": f"outage-{n}"} for n, item in enumerate(items(1)[1:])]
        answered = client.post(f"/v1/projects/{pid}/prompts", json={"items": batch})
        assert answered.status_code == 202, answered.text  # committed; its sends failed
        with db.session() as s:
            unsent = s.scalar(
                select(func.count()).select_from(TaskOutbox).where(TaskOutbox.sent_at.is_(None))
            )
        assert unsent
        time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))
        redis.start()
        back = time.monotonic()

        def all_paired() -> bool:
            shape.keep_worker_up()
            return paired(db, pid) == 20

        wait_for(all_paired, 180, "every prompt paired after Redis came back")
        resumed = time.monotonic() - back
        log.warning(
            "Redis down 15 s: %d sends failed; all paired %.1f s after Redis came back (worker restarts: %d)",
            unsent,
            resumed,
            shape.restarts,
        )
        check_nothing_lost(db, client, pid, 20)
    assert resumed < RESUME_GOAL_S
