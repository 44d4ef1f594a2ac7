"""What the chaos scenarios share: the stack they run against, the AlpacaEval items they ingest, a queue of
pairs seeded in bulk, an HTTP client that records every answer, and the figures each scenario reports."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from tests.processes import Api, Postgres, Redis, Shape

log = logging.getLogger("chaos")

ROOT = Path(__file__).resolve().parents[2]
ALPACA = ROOT / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"
# Every request the scenarios send gives up after this long: a request still unanswered then "hung".
CLIENT_TIMEOUT_S = 10.0
RESUME_GOAL_S = 30.0

FIGURES: list[tuple[str, str]] = []


def report(scenario: str, line: str) -> None:
    """A figure of a scenario: logged now, printed again in the run's summary (tests/chaos/conftest.py)."""
    FIGURES.append((scenario, line))
    log.warning("%s: %s", scenario, line)


# ------------------------------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Postgres, Redis, the API (2 worker processes), a Celery worker and beat, all of the suite's own."""

    workdir: Path
    postgres: Postgres
    redis: Redis
    api: Api
    shape: Shape
    database_url: str
    admin_key: str
    engine: Engine

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.api.url,
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=CLIENT_TIMEOUT_S,
        )

    def async_client(self, key: str | None = None, connections: int = 100) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api.url,
            headers={"Authorization": f"Bearer {key or self.admin_key}"},
            timeout=CLIENT_TIMEOUT_S,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )

    @contextmanager
    def sql(self) -> Iterator[Connection]:
        """A connection of the test's own (no pool: a Postgres restart leaves nothing stale behind)."""
        with self.engine.begin() as conn:
            yield conn

    def scalar(self, query: str, **params: Any) -> Any:
        with self.sql() as conn:
            return conn.execute(text(query), params).scalar()


def null_pool_engine(url: str) -> Engine:
    return create_engine(url, poolclass=NullPool)


# ------------------------------------------------------------------------------------------------- data


def alpaca_items(start: int, count: int, *, chars: int, tag: str) -> list[dict[str, Any]]:
    """`count` AlpacaEval prompts (8 real responses each) from data/simulation, under new external ids, each
    response cut to its first `chars` characters (embedding time stays bounded; the cut texts stay distinct:
    999 of the first 1,000 at 160 characters)."""
    with gzip.open(ALPACA, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    chosen = rows[start : start + count]
    assert len(chosen) == count, f"{ALPACA} has {len(rows)} prompts, fewer than {start + count}"
    return [
        {
            "external_id": f"{tag}-{row['external_id']}",
            "prompt": row["prompt"],
            "responses": [
                {"external_id": r["external_id"], "text": r["text"][:chars], "model": r["model"]}
                for r in row["responses"]
            ],
            "metadata": row.get("metadata") or {},
        }
        for row in chosen
    ]


# Queued pairs of synthetic prompts, set-based (the queue scenarios need tens of thousands; embedding them
# would take hours here). The same columns tests/factories.make_pairs fills, one slot per wanted label.
_SEED = [
    """
    INSERT INTO prompt (id, project_id, external_id, prompt, content_sha256, status, created_at)
    SELECT md5(:tag || 'p' || g)::uuid, :project, :tag || '-' || g, to_json('Prompt number ' || g),
           md5(:tag || 'p' || g) || md5(:tag || 'q' || g), 'paired', now()
    FROM generate_series(1, :n) g
    """,
    """
    INSERT INTO response (id, prompt_id, position, external_id, model, text, text_sha256, created_at)
    SELECT md5(:tag || 'r' || pos || '-' || g)::uuid, md5(:tag || 'p' || g)::uuid, pos, 'r' || pos,
           'model-' || pos, 'Answer ' || pos || ' to prompt ' || g,
           md5(:tag || 'r' || pos || g) || md5(:tag || 's' || pos || g), now()
    FROM generate_series(1, :n) g, generate_series(0, 1) pos
    """,
    """
    INSERT INTO pair (id, project_id, prompt_id, response_a_id, response_b_id, strategy, rank, similarity,
                      priority, status, labels_count, created_at)
    SELECT md5(:tag || 'pair' || g)::uuid, :project, md5(:tag || 'p' || g)::uuid,
           least(md5(:tag || 'r0-' || g)::uuid, md5(:tag || 'r1-' || g)::uuid),
           greatest(md5(:tag || 'r0-' || g)::uuid, md5(:tag || 'r1-' || g)::uuid),
           'dissimilar', 0, 1 - (g % 97) / 97.0, (g % 97) / 97.0, 'queued', 0, now()
    FROM generate_series(1, :n) g
    """,
    """
    INSERT INTO pair_slot (id, project_id, pair_id, slot, priority, done, released)
    SELECT md5(:tag || 'slot' || k || '-' || g)::uuid, :project, md5(:tag || 'pair' || g)::uuid, k,
           (g % 97) / 97.0, false, false
    FROM generate_series(1, :n) g, generate_series(0, :slots - 1) k
    """,
]


def seed_queue(stack: Stack, project_id: str, pairs: int, slots: int = 1) -> None:
    """`pairs` queued pairs with `slots` slots each in the project, then ANALYZE (as autovacuum would)."""
    tag = uuid.uuid4().hex[:8]
    with stack.sql() as conn:
        for statement in _SEED:
            conn.execute(text(statement), {"tag": tag, "project": project_id, "n": pairs, "slots": slots})
    with stack.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def post_retrying(api: httpx.Client, url: str, body: dict[str, Any]) -> httpx.Response:
    """POST as a well-behaved client does: right after the Postgres scenario a pooled connection of an API
    process may still be a dead one, and the API answers 503 ("retry shortly", nothing stored); retry it."""
    answer = api.post(url, json=body)
    for _ in range(10):
        if answer.status_code != 503:
            break
        time.sleep(0.5)
        answer = api.post(url, json=body)
    return answer


def annotator_keys(stack: Stack, project_id: str, count: int, name: str) -> list[str]:
    """One annotator principal and key per simulated annotator, member of the project (POST /v1/keys)."""
    made = []
    with stack.client() as api:
        for n in range(count):
            body = {"role": "annotator", "name": f"{name}-{n}", "projects": [project_id]}
            answer = post_retrying(api, "/v1/keys", body)
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["key"])
    return made


# ------------------------------------------------------------------------------------------------- calls


@dataclass
class Call:
    """One request: what, when (monotonic), how long, and its answer (status None: none within the timeout
    or the connection failed; `error` says which)."""

    kind: str
    at: float
    seconds: float
    status: int | None
    problem_json: bool = False
    error: str = ""


@dataclass
class Calls:
    items: list[Call] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)  # label ids of every 2xx label answer

    def by_status(self, kinds: tuple[str, ...] | None = None) -> Counter[str]:
        return Counter(
            f"{c.kind} {c.status if c.status is not None else c.error or 'no answer'}"
            for c in self.items
            if kinds is None or c.kind in kinds
        )

    def unanswered(self) -> list[Call]:
        return [c for c in self.items if c.status is None]

    def server_errors(self) -> list[Call]:
        return [c for c in self.items if c.status is not None and c.status >= 500]


async def send(
    client: httpx.AsyncClient, calls: Calls, kind: str, method: str, path: str, body: Any = None
) -> httpx.Response | None:
    t0 = time.monotonic()
    try:
        answer = await client.request(method, path, json=body)
    except httpx.TimeoutException:
        calls.items.append(Call(kind, t0, time.monotonic() - t0, None, error="timeout"))
        return None
    except httpx.TransportError as exc:
        calls.items.append(Call(kind, t0, time.monotonic() - t0, None, error=type(exc).__name__))
        return None
    problem = answer.headers.get("content-type", "").startswith("application/problem+json")
    calls.items.append(Call(kind, t0, time.monotonic() - t0, answer.status_code, problem))
    return answer


async def annotate(
    client: httpx.AsyncClient,
    project_id: str,
    calls: Calls,
    until: Callable[[], bool],
    *,
    think_s: float = 0.1,
    rng: random.Random | None = None,
) -> None:
    """One annotator: claim, think, label, until `until()`. A label that got no 2xx is sent again (the same
    request: a retry of a label already stored answers 200 with the first one) while its lease lasts."""
    rng = rng or random.Random()
    while not until():
        claimed = await send(client, calls, "claim", "POST", f"/v1/projects/{project_id}/queue/claim")
        if claimed is None or claimed.status_code != 200:
            await asyncio.sleep(0.5 if claimed is not None and claimed.status_code == 204 else 0.2)
            continue
        await asyncio.sleep(think_s * rng.random())
        path = f"/v1/assignments/{claimed.json()['assignment_id']}/label"
        body = {"choice": rng.choice(["a", "b", "a", "tie"])}
        for _ in range(60):
            answer = await send(client, calls, "label", "POST", path, body)
            if answer is not None and answer.status_code in (200, 201):
                calls.acknowledged.append(answer.json()["id"])
                break
            if answer is not None and answer.status_code < 500:
                break  # refused for good (the lease expired, say): nothing stored, nothing acknowledged
            await asyncio.sleep(0.5)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> float:
    """Seconds until `predicate()` held (polled every `every` s); AssertionError after `timeout`."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def double_labels(stack: Stack, project_id: str) -> dict[str, int]:
    """Every way a label could be stored twice, counted in the database (each must be 0)."""
    checks = {
        # a slot (one wanted label of a pair) with two labels
        "slots labelled twice": """
            SELECT count(*) FROM (SELECT a.slot_id FROM label l JOIN assignment a ON a.id = l.assignment_id
            WHERE l.project_id = :p GROUP BY a.slot_id HAVING count(*) > 1) x""",
        "assignments with two labels": """
            SELECT count(*) FROM (SELECT assignment_id FROM label WHERE project_id = :p
            GROUP BY assignment_id HAVING count(*) > 1) x""",
        "pairs labelled twice by one annotator": """
            SELECT count(*) FROM (SELECT pair_id, annotator FROM label WHERE project_id = :p
            GROUP BY pair_id, annotator HAVING count(*) > 1) x""",
        "pairs with more labels than slots": """
            SELECT count(*) FROM (SELECT l.pair_id FROM label l WHERE l.project_id = :p GROUP BY l.pair_id
            HAVING count(*) > (SELECT count(*) FROM pair_slot s WHERE s.pair_id = l.pair_id)) x""",
    }
    with stack.sql() as conn:
        return {
            name: int(conn.execute(text(q), {"p": project_id}).scalar() or 0) for name, q in checks.items()
        }


def stored_once(stack: Stack, label_ids: list[str]) -> tuple[int, int]:
    """(acknowledged label ids stored exactly once, acknowledged ids missing) — ids are primary keys, so a
    stored one is there once; what matters is that none is missing and no label was stored twice for one
    assignment (double_labels)."""
    unique = sorted(set(label_ids))
    with stack.sql() as conn:
        found = int(
            conn.execute(
                text("SELECT count(*) FROM label WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": unique}
            ).scalar()
            or 0
        )
    return found, len(unique) - found
