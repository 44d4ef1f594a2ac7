"""The whole pipeline driven through the API, shared by the Celery and the embedded-default tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from app.embeddings.codec import from_bytes
from app.embeddings.models import Embedding

DATA = Path(__file__).resolve().parent.parent / "data" / "alpaca_eval_20x4.jsonl"


def load_items() -> list[dict[str, Any]]:
    """20 AlpacaEval prompts with 4 real responses each (see tests/data/NOTICE.md)."""
    with DATA.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_pipeline(client: Any, db: Any, *, embed_timeout: float = 240) -> None:
    """Create → ingest → embeddings → least similar pair per prompt → claim/label all → export → check."""
    items = load_items()
    project = client.post("/v1/projects", json={"name": "pipeline", "instructions": "Pick one."}).json()
    pid = project["id"]
    ingest = client.post(f"/v1/projects/{pid}/prompts", json={"items": items})
    assert ingest.status_code == 202, ingest.text
    job_id = ingest.json()["job_id"]
    assert ingest.json()["accepted"] == len(items)

    def job_done() -> bool:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] != "failed", job
        return bool(job["status"] == "succeeded")

    wait_for(job_done, embed_timeout, "embedding and pairing")
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["done"], job["total"]) == (len(items), len(items))
    stats = client.get(f"/v1/projects/{pid}/stats").json()
    assert stats["embedded"] == stats["responses"] == 4 * len(items)
    assert stats["pairs"] == len(items)
    assert stats["unpairable"] == 0

    pairs = []
    cursor = None
    while True:
        page = client.get(
            f"/v1/projects/{pid}/pairs", params={"limit": 7, **({"cursor": cursor} if cursor else {})}
        )
        pairs += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert len(pairs) == len(items)

    # Independent check: the least similar pair per prompt, from the stored vectors, in plain numpy.
    with db.session() as session:
        vectors = {
            e.text_sha256: from_bytes(e.vector, e.dim)
            for e in session.scalars(select(Embedding).where(Embedding.model == project["embedding_model"]))
        }
    import hashlib

    for pair in pairs:
        prompt = client.get(f"/v1/projects/{pid}/prompts/by-external-id/{pair['prompt_external_id']}").json()
        texts = [r["text"] for r in prompt["responses"]]
        mat = np.stack([vectors[hashlib.sha256(t.encode()).hexdigest()] for t in texts]).astype(np.float64)
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
        sims = mat @ mat.T
        best = min((sims[i, j], i, j) for i in range(4) for j in range(i + 1, 4))
        expected = {prompt["responses"][best[1]]["id"], prompt["responses"][best[2]]["id"]}
        assert {pair["response_a"]["id"], pair["response_b"]["id"]} == expected
        assert pair["similarity"] == np.float64(best[0]).item() or abs(pair["similarity"] - best[0]) < 1e-6

    # Label every pair: alternate choices, including a tie that must not reach the export.
    labelled: dict[str, str | None] = {}
    for n in range(len(items)):
        claim = client.post(f"/v1/projects/{pid}/queue/claim")
        assert claim.status_code == 200, claim.text
        assignment = claim.json()
        choice = ["a", "b", "tie", "a"][n % 4]
        stored = client.post(f"/v1/assignments/{assignment['assignment_id']}/label", json={"choice": choice})
        assert stored.status_code == 201
        winner = stored.json()["winner_response_id"]
        pair_id = stored.json()["pair_id"]
        labelled[pair_id] = winner
        if choice in ("a", "b"):
            assert winner == assignment[f"response_{choice}"]["id"]
    empty = client.post(f"/v1/projects/{pid}/queue/claim")
    assert empty.status_code == 204
    assert empty.headers["Real-Queue-Reason"] == "empty"

    export = client.post(f"/v1/projects/{pid}/exports", json={"format": "jsonl"})
    assert export.status_code == 202
    export_id = export.json()["id"]
    wait_for(lambda: client.get(f"/v1/exports/{export_id}").json()["status"] == "succeeded", 60, "the export")
    meta = client.get(f"/v1/exports/{export_id}").json()
    body = client.get(f"/v1/exports/{export_id}/file")
    assert body.status_code == 200
    assert hashlib.sha256(body.content).hexdigest() == meta["sha256"]
    lines = [json.loads(line) for line in body.text.splitlines()]
    winners = {pid_: w for pid_, w in labelled.items() if w is not None}
    assert meta["rows"] == len(lines) == len(winners)
    by_id = {p["id"]: p for p in pairs}
    for line in lines:
        assert set(line) >= {
            "prompt",
            "chosen",
            "rejected",
            "prompt_external_id",
            "pair_id",
            "similarity",
            "chosen_model",
            "rejected_model",
        }
        pair = by_id[line["pair_id"]]
        winner_id = winners[line["pair_id"]]
        chosen = pair["response_a"] if pair["response_a"]["id"] == winner_id else pair["response_b"]
        rejected = pair["response_b"] if chosen is pair["response_a"] else pair["response_a"]
        assert (line["chosen"], line["rejected"]) == (chosen["text"], rejected["text"])
        assert (line["chosen_model"], line["rejected_model"]) == (chosen["model"], rejected["model"])
    stats = client.get(f"/v1/projects/{pid}/stats").json()
    assert stats["labels"] == len(items)
