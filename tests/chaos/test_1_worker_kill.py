"""Scenario 1: the Celery worker SIGKILLed three times while 1,000 AlpacaEval responses are ingested.

Every response ends with exactly one embedding and every prompt with its pairs, and after each restart the
work resumes within 30 s: the new worker has taken an embedding task, and the tasks the killed one held are
back (sent again by the task outbox's relay, or taken again; the reconciler is off). When the new worker's
first vectors land is printed too: a whole task of 64 texts, which on a busy 2-core machine takes 10-15 s."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.chaos.harness import RESUME_GOAL_S, Stack, alpaca_items, report, wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

PROMPTS = 125  # x 8 responses = 1,000
BATCH = 25
CHARS = 160


def embedded(stack: Stack, project_id: str) -> int:
    """Responses of the project whose text has an embedding of the project's model."""
    return int(
        stack.scalar(
            """SELECT count(*) FROM response r JOIN prompt p ON p.id = r.prompt_id
               JOIN project j ON j.id = p.project_id
               WHERE p.project_id = :p AND EXISTS (SELECT 1 FROM embedding e
                     WHERE e.model = j.embedding_model AND e.text_sha256 = r.text_sha256)""",
            p=project_id,
        )
    )


def held(stack: Stack) -> dict[str, tuple[int, int]]:
    """Embedding tasks a worker holds now: outbox id -> (runs, resends)."""
    with stack.sql() as conn:
        rows = conn.exec_driver_sql(
            "SELECT id::text, runs, resends FROM task_outbox "
            "WHERE task = 'embeddings.embed_prompts' AND run_token IS NOT NULL"
        ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def taken_since(stack: Stack, since: Any) -> bool:
    """A run took an embedding task after `since` (the database's clock): a worker is working on one."""
    return bool(
        stack.scalar(
            "SELECT count(*) FROM task_outbox WHERE task = 'embeddings.embed_prompts' "
            "AND run_token IS NOT NULL AND heartbeat_at > :since",
            since=since,
        )
    )


def back(stack: Stack, orphans: dict[str, tuple[int, int]]) -> bool:
    """Every task the killed worker held is done, sent again, or taken by a new run."""
    with stack.sql() as conn:
        rows = {
            row[0]: (row[1], row[2])
            for row in conn.exec_driver_sql(
                "SELECT id::text, runs, resends FROM task_outbox WHERE id = ANY(%(ids)s::uuid[])",
                {"ids": list(orphans)},
            )
        }
    return all(
        oid not in rows or rows[oid][0] > runs or rows[oid][1] > resends
        for oid, (runs, resends) in orphans.items()
    )


def test_a_worker_sigkilled_three_times_during_ingest_loses_nothing_and_resumes_within_30_s(
    stack: Stack,
) -> None:
    items = alpaca_items(0, PROMPTS, chars=CHARS, tag="kill")
    responses = sum(len(item["responses"]) for item in items)
    assert responses == 1000
    batches = [items[n : n + BATCH] for n in range(0, PROMPTS, BATCH)]
    with stack.client() as api:
        project = api.post("/v1/projects", json={"name": "chaos: worker SIGKILL", "pairs_per_prompt": 2})
        assert project.status_code == 201, project.text
        pid = project.json()["id"]

        def ingest() -> None:
            answer = api.post(f"/v1/projects/{pid}/prompts", json={"items": batches.pop(0)})
            assert answer.status_code == 202, answer.text

        started = time.monotonic()
        ingest()
        ingest()
        figures: list[dict[str, Any]] = []
        for kill in (1, 2, 3):
            # The first worker loads the model before it takes anything; later ones hold re-taken work soon.
            wait_until(lambda: held(stack), 300 if kill == 1 else 120, f"a held embedding task (kill {kill})")
            orphans = held(stack)
            stack.shape.kill_worker()
            done = embedded(stack, pid)
            killed_at = stack.scalar("SELECT now()")
            stack.shape.start_worker()
            restarted = time.monotonic()
            ingest()  # the ingest goes on: a batch of 200 responses after each restart
            seen: dict[str, float] = {}
            checks = {
                # the new worker holds an embedding task: working again
                "working": lambda at=killed_at: taken_since(stack, at),
                # the tasks the killed worker held are done, sent again or taken again
                "back": lambda o=orphans: back(stack, o),
                # vectors stored (a whole task of 64 texts: slower on a busy machine, not asserted)
                "stored": lambda d=done: embedded(stack, pid) > d,
            }

            def all_seen(
                checks: dict[str, Any] = checks, seen: dict[str, float] = seen, t0: float = restarted
            ) -> bool:
                for name, check in checks.items():
                    if name not in seen and check():
                        seen[name] = time.monotonic() - t0
                return len(seen) == len(checks)

            wait_until(all_seen, 180, f"the work to resume after restart {kill}")
            figures.append({"held": len(orphans), "done": done, **seen})
            report(
                "1 worker SIGKILL",
                f"kill {kill}: {len(orphans)} task(s) held, {done}/{responses} responses embedded; after the "
                f"restart a task taken in {seen['working']:.1f} s, the killed tasks back in "
                f"{seen['back']:.1f} s, vectors stored again in {seen['stored']:.1f} s",
            )
        while batches:
            ingest()
        total_s = wait_until(
            lambda: (
                stack.scalar(
                    "SELECT count(*) FROM prompt WHERE project_id = :p AND status = 'pending'", p=pid
                )
                == 0
            ),
            300,
            "every prompt paired",
            every=1.0,
        )
        stats = api.get(f"/v1/projects/{pid}/stats").json()

    per_text = stack.scalar(
        """SELECT count(*) FROM (SELECT e.text_sha256 FROM embedding e WHERE e.text_sha256 IN
           (SELECT r.text_sha256 FROM response r JOIN prompt p ON p.id = r.prompt_id WHERE p.project_id = :p)
           GROUP BY e.model, e.text_sha256 HAVING count(*) > 1) x""",
        p=pid,
    )
    pairs_off = stack.scalar(
        """SELECT count(*) FROM prompt p WHERE p.project_id = :p
           AND (SELECT count(*) FROM pair WHERE pair.prompt_id = p.id) <> 2""",
        p=pid,
    )
    # Follow-up tasks may still run just after the last pair; the outbox must then drain: nothing is stuck.
    drained_s = wait_until(
        lambda: stack.scalar("SELECT count(*) FROM task_outbox") == 0, 60, "the outbox to drain"
    )
    report(
        "1 worker SIGKILL",
        f"{stats['prompts']} prompts, {stats['responses']} responses, {stats['embedded']} embedded, "
        f"{stats['pairs']} pairs; all paired {time.monotonic() - started:.1f} s after the first batch "
        f"({total_s:.1f} s after the last); texts with two embeddings: {per_text}; prompts without exactly 2 "
        f"pairs: {pairs_off}; the outbox empty {drained_s:.1f} s later",
    )
    assert stats["responses"] == responses
    assert embedded(stack, pid) == responses  # every response has its embedding...
    assert per_text == 0  # ...exactly one
    assert stats["prompts"] == PROMPTS
    assert stats["unpairable"] == 0
    assert pairs_off == 0
    assert stats["pairs"] == 2 * PROMPTS
    for n, figure in enumerate(figures, 1):
        assert figure["working"] < RESUME_GOAL_S, (
            f"kill {n}: the new worker took a task {figure['working']:.1f} s after the restart"
        )
        assert figure["back"] < RESUME_GOAL_S, (
            f"kill {n}: the killed tasks came back after {figure['back']:.1f} s"
        )
