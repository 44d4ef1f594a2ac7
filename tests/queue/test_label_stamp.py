"""A label is stamped (labeled_at) when its work starts, not when its request came in: under load a label
waits for the process's queue limiter (REAL_QUEUE_CONCURRENCY) for seconds, and an export of a snapshot
counts on a label being written within moments of its stamp (app/exports/snapshot.settle). Found by the chaos
suite's load run: two exports of one snapshot taken during the load differed."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import httpx

from app.api.clock import get_now
from app.main import create_app
from app.queue import fastlane
from tests.conftest import ADMIN_KEY
from tests.factories import make_pairs, make_project
from tests.live_server import serve

T = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
HOLD_S = 1.5


def test_a_label_that_waited_for_the_queue_limiter_is_stamped_when_its_work_starts(
    db: Any, override_settings: Any, monkeypatch: Any, recorded_tasks: Any
) -> None:
    override_settings(queue_concurrency=1)  # one claim or label at a time per process
    with db.session() as s:
        project = make_project(s)
        make_pairs(s, project, 2)
        project_id = str(project.id)
    app = create_app(admin_key=ADMIN_KEY, start_runner=False)

    async def frozen() -> datetime:
        return T

    app.dependency_overrides[get_now] = frozen  # every request comes in at T
    original = fastlane.label_request
    first = threading.Event()

    def slow_first(*args: Any, **kwargs: Any) -> Any:
        if not first.is_set():
            first.set()
            time.sleep(HOLD_S)  # holds the only slot: the second label waits on the limiter meanwhile
        return original(*args, **kwargs)

    monkeypatch.setattr(fastlane, "label_request", slow_first)
    with serve(app) as url:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assignments = []
        for n in range(2):
            body = {"role": "annotator", "name": f"stamp-{n}", "projects": [project_id]}
            key = httpx.post(f"{url}/v1/keys", json=body, headers=admin).json()["key"]
            claim = httpx.post(
                f"{url}/v1/projects/{project_id}/queue/claim", headers={"Authorization": f"Bearer {key}"}
            )
            assert claim.status_code == 200, claim.text
            assignments.append((key, claim.json()["assignment_id"]))
        answers: list[httpx.Response] = []

        def send(key: str, assignment_id: str) -> None:
            answers.append(
                httpx.post(
                    f"{url}/v1/assignments/{assignment_id}/label",
                    json={"choice": "a"},
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=30,
                )
            )

        threads = [threading.Thread(target=send, args=pair) for pair in assignments]
        threads[0].start()
        assert first.wait(10)
        threads[1].start()
        for thread in threads:
            thread.join(30)
    stamps = sorted(datetime.fromisoformat(a.json()["labeled_at"]) for a in answers)
    assert [a.status_code for a in answers] == [201, 201]
    assert stamps[0] - T < timedelta(seconds=0.5)  # the first started at once
    assert stamps[1] - T >= timedelta(seconds=HOLD_S - 0.3)  # the second when the limiter let it in
