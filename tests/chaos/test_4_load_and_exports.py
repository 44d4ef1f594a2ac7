"""Scenarios 4 and 5: 100 annotators claim and label for 2 minutes on Postgres, each with a key of their own;
meanwhile two exports of one snapshot are made, 40 s apart.

4: no pair slot labelled twice, no assignment with two labels, every 201 stored, errors under 0.1%, and the
   latency percentiles printed (recorded in docs/benchmarks.md).
5: the two exports' files (and a third made after the load) are byte-identical.

The load client is bench/queue.py's (asyncio, one keep-alive connection per annotator, a few tens of
microseconds of CPU per request), so the two cores go to the server and the database."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from bench.queue import percentile, run_cell
from tests.chaos.harness import (
    Stack,
    annotator_keys,
    double_labels,
    post_retrying,
    report,
    seed_queue,
    wait_until,
)

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(480)]

ANNOTATORS = 100
SECONDS = 120.0
PAIRS = 60_000  # more than 2 minutes can label on this machine: the queue never runs dry
EXPORT_AT_S = (30.0, 70.0)


def _ms(values: list[float]) -> str:
    return " / ".join(f"{percentile(values, q):,.0f}" for q in (50, 95, 99))


def test_100_annotators_for_2_minutes_with_exports_of_one_snapshot(stack: Stack) -> None:
    with stack.client() as api:
        created = post_retrying(api, "/v1/projects", {"name": "chaos: load"})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
    t0 = time.monotonic()
    seed_queue(stack, pid, PAIRS)
    seeded_s = time.monotonic() - t0
    keys = annotator_keys(stack, pid, ANNOTATORS, "load")
    exports: list[dict[str, Any]] = []

    def create_export() -> None:
        # The first asks for "now" (no snapshot_at); the others ask for the snapshot it was given.
        body = {"format": "jsonl", **({"snapshot_at": exports[0]["snapshot_at"]} if exports else {})}
        with stack.client() as api:
            answer = api.post(f"/v1/projects/{pid}/exports", json=body)
            assert answer.status_code == 202, answer.text
            exports.append(answer.json())

    async def exports_during_load() -> None:
        for at in EXPORT_AT_S:
            await asyncio.sleep(at - (time.monotonic() - started))
            await asyncio.to_thread(create_export)

    async def scenario() -> Any:
        cell = asyncio.create_task(
            run_cell(urlsplit(stack.api.url).port or 0, keys, uuid.UUID(pid), ANNOTATORS, SECONDS, 10**9)
        )
        await exports_during_load()
        return await cell

    started = time.monotonic()
    log = asyncio.run(scenario())
    create_export()  # and once more after the load, same snapshot

    def finished() -> bool:
        with stack.client() as api:
            runs = [api.get(f"/v1/exports/{e['id']}").json() for e in exports]
        assert all(r["status"] != "failed" for r in runs), runs
        done = all(r["status"] == "succeeded" for r in runs)
        if done:
            exports[:] = runs
        return done

    wait_until(finished, 180, "the three exports", every=1.0)
    digests = []
    with stack.client() as api:
        for run in exports:
            body = api.get(f"/v1/exports/{run['id']}/file")
            assert body.status_code == 200
            digests.append(hashlib.sha256(body.content).hexdigest())
            assert digests[-1] == run["sha256"]

    requests = sum(log.statuses.values())
    errors = sum(n for k, n in log.statuses.items() if not k.endswith((" 200", " 201", " 204")))
    five_xx = sum(n for k, n in log.statuses.items() if k.split()[1][0] == "5")
    doubles = double_labels(stack, pid)
    stored = stack.scalar("SELECT count(*) FROM label WHERE project_id = :p", p=pid)
    handed_twice = sum(n - 1 for n in log.handed_out.values() if n > 1)
    report(
        "4 load",
        f"{ANNOTATORS} annotators, {log.wall_s:.0f} s, {PAIRS:,} pairs seeded in {seeded_s:.1f} s: "
        f"{log.round_trips:,} labels ({log.round_trips / log.wall_s:.1f} claim+label round trips/s), "
        f"{requests:,} requests, {errors} errors ({errors / max(requests, 1):.3%}), {five_xx} 5xx; "
        f"{dict(sorted(log.statuses.items()))}",
    )
    report(
        "4 load",
        f"latency ms p50 / p95 / p99: claim {_ms(log.claim_ms)}, label {_ms(log.label_ms)}, all "
        f"{_ms(log.claim_ms + log.label_ms)}; client CPU {log.client_cpu_s * 1000 / max(requests, 1):.2f} ms "
        f"per request",
    )
    report(
        "4 load",
        f"{stored:,} labels stored, {log.statuses['label 201']:,} acknowledged 201; double labels {doubles}; "
        f"pairs handed out twice: {handed_twice}",
    )
    report(
        "5 exports",
        f"snapshot {exports[0]['snapshot_at']}: {len(exports)} exports ({exports[0]['rows']:,} rows), made "
        f"{EXPORT_AT_S[0]:.0f} s and {EXPORT_AT_S[1]:.0f} s into the load and after it; sha256 "
        f"{', '.join(d[:12] for d in digests)}",
    )
    assert not log.exhausted, "the queue ran dry before the 2 minutes: seed more pairs"
    assert not any(doubles.values()), doubles
    assert handed_twice == 0
    assert stored == log.statuses["label 201"]
    assert errors / requests < 0.001, dict(log.statuses)
    assert exports[0]["rows"] > 0
    assert len(set(digests)) == 1, f"exports of one snapshot differ: {digests}"
