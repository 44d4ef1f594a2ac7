"""Scenario 3: Postgres stopped for 15 s (`pg_ctl stop -m fast`, then started again) while annotators claim
and label.

While it is down the API answers 503 problem+json, no request waits past the client's 10 s timeout, and
afterwards every label that was acknowledged (2xx) is stored exactly once: an annotator sends a label again
while it gets no 2xx, so a label stored just before its connection was cut comes back as the first one."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.chaos.harness import (
    CLIENT_TIMEOUT_S,
    Calls,
    Stack,
    annotate,
    annotator_keys,
    double_labels,
    report,
    seed_queue,
    stored_once,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

BEFORE_S, DOWN_S, AFTER_S = 5.0, 15.0, 15.0
ANNOTATORS = 20


def test_postgres_down_15_s_under_claim_and_label_load_answers_503_and_keeps_every_label_once(
    stack: Stack,
) -> None:
    with stack.client() as api:
        pid = api.post("/v1/projects", json={"name": "chaos: Postgres outage"}).json()["id"]
    seed_queue(stack, pid, 4000)
    keys = annotator_keys(stack, pid, ANNOTATORS, "pg-outage")
    calls = Calls()
    marks: dict[str, float] = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        clients = [stack.async_client(key, connections=2) for key in keys]
        rng = random.Random(3)
        workers = [
            asyncio.create_task(annotate(c, pid, calls, stop.is_set, rng=random.Random(rng.random())))
            for c in clients
        ]
        await asyncio.sleep(BEFORE_S)
        marks["down"] = time.monotonic()
        await asyncio.to_thread(stack.postgres.stop, "fast")
        marks["stopped"] = time.monotonic()
        await asyncio.sleep(max(0.0, DOWN_S - (marks["stopped"] - marks["down"])))
        marks["starting"] = time.monotonic()  # Postgres answers before pg_ctl start returns
        await asyncio.to_thread(stack.postgres.start)
        marks["back"] = time.monotonic()
        await asyncio.sleep(AFTER_S)
        stop.set()
        await asyncio.gather(*workers)
        for c in clients:
            await c.aclose()

    asyncio.run(scenario())
    down, back = marks["down"], marks["back"]
    during = [c for c in calls.items if down <= c.at < back]
    starting = marks["starting"]
    first_ok = min(
        (c.at + c.seconds for c in calls.items if c.at >= starting and c.status in (200, 201)),
        default=float("nan"),
    )
    answered_during = [c for c in during if c.status is not None]
    bad = [c for c in calls.server_errors() if not (c.status == 503 and c.problem_json)]
    slowest = max(c.seconds for c in calls.items)
    found, missing = stored_once(stack, calls.acknowledged)
    doubles = double_labels(stack, pid)
    stored = stack.scalar("SELECT count(*) FROM label WHERE project_id = :p", p=pid)
    acknowledged = len(set(calls.acknowledged))
    report(
        "3 Postgres down 15 s",
        f"{len(calls.items)} requests, {len(during)} while it was down "
        f"({sum(1 for c in during if c.status == 503)} answered 503 problem+json); "
        f"{dict(sorted(calls.by_status().items()))}; slowest {slowest:.2f} s (client timeout "
        f"{CLIENT_TIMEOUT_S:.0f} s); first 2xx {first_ok - starting:.2f} s after pg_ctl start",
    )
    report(
        "3 Postgres down 15 s",
        f"{acknowledged} labels acknowledged, {found} of them stored, {missing} missing, {stored} stored in "
        f"all; double labels {doubles}",
    )
    assert not calls.unanswered(), (
        f"requests with no answer within {CLIENT_TIMEOUT_S} s: {calls.unanswered()[:5]}"
    )
    assert not bad, f"5xx answers other than 503 problem+json: {bad[:5]}"
    stopped = [c for c in answered_during if c.at > marks["stopped"] and c.at + c.seconds < marks["starting"]]
    assert stopped, "no request was answered while Postgres was stopped"
    assert all(c.status == 503 for c in stopped), "while Postgres was stopped every answer is a 503"
    assert missing == 0
    assert stored == acknowledged  # every stored label was acknowledged, once
    assert not any(doubles.values()), doubles
    assert first_ok - starting < 30
