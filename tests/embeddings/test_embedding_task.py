"""The embedding task on the real model: texts alone, once per model, truncation recorded, idempotent."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from app.embeddings.codec import from_bytes
from app.embeddings.embedder import get_embedder
from app.embeddings.models import Embedding
from app.embeddings.tasks import embed_prompts
from app.maintenance.tasks import reconcile
from app.pairs.models import Pair, PairSlot
from app.prompts.models import Prompt

pytestmark = pytest.mark.embedding

LONG = " ".join(["word"] * 400)


def test_embeds_each_text_once_alone_and_records_truncation(
    client: Any, db: Any, recorded_tasks: list[Any]
) -> None:
    project = client.post(
        "/v1/projects", json={"name": "embed", "pairs_per_prompt": 2, "annotations_per_pair": 2}
    ).json()
    items = [
        {"external_id": "p1", "prompt": "Say hi", "responses": ["Hello there!", "Hi.", LONG, "Hi."]},
        {"external_id": "p2", "prompt": "Say bye", "responses": ["Hello there!", "Goodbye."]},
        {"external_id": "p3", "prompt": "Dupes", "responses": ["same", "same", ""]},
    ]
    client.post(f"/v1/projects/{project['id']}/prompts", json={"items": items})
    prompt_ids = [i for _, kwargs in recorded_tasks for i in kwargs["prompt_ids"]]
    embed_prompts(prompt_ids)
    embed_prompts(prompt_ids)  # a redelivered task changes nothing
    with db.session() as session:
        rows = {e.text_sha256: e for e in session.scalars(select(Embedding))}
        # 5 distinct non-empty response texts and 3 prompt texts across prompts: each embedded once.
        assert len(rows) == 8
        truncated = [e for e in rows.values() if e.truncated]
        assert len(truncated) == 1
        assert truncated[0].token_count > 256
        statuses = dict(session.execute(select(Prompt.external_id, Prompt.status)).all())
        assert statuses == {"p1": "paired", "p2": "paired", "p3": "unpairable"}
        assert session.scalar(select(func.count()).select_from(Pair)) == 3  # p1: 2 pairs, p2: 1
        assert session.scalar(select(func.count()).select_from(PairSlot)) == 6  # 2 slots each
        stored = next(e for e in rows.values() if e.dim and e.token_count < 10 and not e.truncated)
    # The stored vector is the model's embedding of the text on its own (no prompt prepended).
    text = next(
        t
        for t in ["Hello there!", "Hi.", "Goodbye.", "same", "Say hi", "Say bye", "Dupes"]
        if __import__("hashlib").sha256(t.encode()).hexdigest() == stored.text_sha256
    )
    direct = get_embedder(project["embedding_model"]).encode([text]).vectors[0]
    assert float(np.dot(direct, from_bytes(stored.vector, stored.dim))) > 0.9999
    stats = client.get(f"/v1/projects/{project['id']}/stats").json()
    assert (stats["unpairable"], stats["pairs"]) == (1, 3)
    prompt = client.get(f"/v1/projects/{project['id']}/prompts/by-external-id/p1").json()
    assert [r["truncated"] for r in prompt["responses"]] == [False, False, True, False]


def test_reconcile_resends_prompts_left_pending(client: Any, db: Any, recorded_tasks: list[Any]) -> None:
    project = client.post("/v1/projects", json={"name": "lost task"}).json()
    client.post(
        f"/v1/projects/{project['id']}/prompts",
        json={"items": [{"external_id": "p", "prompt": "q", "responses": ["a", "b"]}]},
    )
    recorded_tasks.clear()
    assert reconcile(older_than_seconds=3600) == {
        "prompts": 0,
        "exports": 0,
        "simulations": 0,
        "stale_simulations": 0,
        "expired_leases": 0,
        "released_flags": 0,
    }
    assert reconcile(older_than_seconds=0)["prompts"] == 1
    assert recorded_tasks[0][0] == "embeddings.embed_prompts"
