"""Selection on real data and the real model: REAL's choices, near-duplicates, re-selection, the budget."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.embeddings.embedder import resolve_model_path
from app.embeddings.tasks import embed_prompts
from tests.factories import grant_annotator, make_pairs, make_project  # noqa: F401

pytestmark = pytest.mark.embedding

DATA = Path(__file__).resolve().parent.parent / "data"


def load(name: str) -> list[dict[str, Any]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def ingest_and_embed(client: Any, project_id: str, items: list[dict[str, Any]], sent: list[Any]) -> None:
    for start in range(0, len(items), 500):
        response = client.post(
            f"/v1/projects/{project_id}/prompts", json={"items": items[start : start + 500]}
        )
        assert response.status_code == 202, response.text
    run_sent(sent)


def run_sent(sent: list[Any]) -> None:
    """Run the recorded embedding tasks here, as a worker would."""
    while sent:
        name, kwargs = sent.pop(0)
        if name == "embeddings.embed_prompts":
            embed_prompts(**kwargs)


def texts_of(item: dict[str, Any]) -> list[str]:
    return [r if isinstance(r, str) else r["text"] for r in item["responses"]]


class TestRealData:
    def test_chosen_pairs_equal_an_independent_sentence_transformers_computation(
        self, client: Any, recorded_tasks: list[Any]
    ) -> None:
        from sentence_transformers import SentenceTransformer

        items = load("alpaca_eval_20x4.jsonl")
        project = client.post("/v1/projects", json={"name": "real", "near_duplicate_threshold": None}).json()
        ingest_and_embed(client, project["id"], items, recorded_tasks)
        independent = SentenceTransformer(resolve_model_path(project["embedding_model"]), device="cpu")
        for item in items:
            texts = texts_of(item)
            vectors = independent.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
            sims = vectors @ vectors.T
            i, j = min(((a, b) for a in range(4) for b in range(a + 1, 4)), key=lambda p: sims[p])
            view = client.get(
                f"/v1/projects/{project['id']}/prompts/by-external-id/{item['external_id']}"
            ).json()
            ids = [r["id"] for r in view["responses"]]
            pair = view["pairs"][0]
            assert {pair["response_a_id"], pair["response_b_id"]} == {ids[i], ids[j]}, item["external_id"]
            assert pair["similarity"] == pytest.approx(float(sims[i, j]), abs=1e-4)
            assert pair["priority"] == pytest.approx(1 - pair["similarity"])
            matrix = np.array(view["similarity_matrix"])
            assert np.allclose(matrix, sims, atol=1e-4)

    def test_hh_rlhf_budget_of_half_releases_exactly_the_least_similar_half(
        self, client: Any, recorded_tasks: list[Any]
    ) -> None:
        items = load("hh_rlhf_harmless_200.jsonl")[:120]  # the paper's HH setting: two responses a prompt
        project = client.post("/v1/projects", json={"name": "hh", "budget": len(items) // 2}).json()
        ingest_and_embed(client, project["id"], items, recorded_tasks)
        stats = client.get(f"/v1/projects/{project['id']}/stats").json()
        assert stats["pairs"] + stats["unpairable"] == len(items)
        pairs = {}
        cursor = None
        while True:
            page = client.get(
                f"/v1/projects/{project['id']}/pairs",
                params={"limit": 200, **({"cursor": cursor} if cursor else {})},
            ).json()
            pairs.update({p["prompt_external_id"]: p for p in page["items"]})
            if not (cursor := page["next_cursor"]):
                break
        handed = []
        for n in range(10):
            grant_annotator(f"a{n}", project["id"])
        while (
            claim := client.post(
                f"/v1/projects/{project['id']}/queue/claim", json={"annotator": f"a{len(handed) % 10}"}
            )
        ).status_code == 200:
            handed.append(claim.json()["assignment_id"])
            client.post(f"/v1/assignments/{handed[-1]}/label", json={"choice": "a"})
        assert claim.headers["Real-Queue-Reason"] == "budget_spent"
        views = {
            ext: client.get(f"/v1/projects/{project['id']}/prompts/by-external-id/{ext}").json()
            for ext in pairs
        }
        released = {ext for ext, view in views.items() if view["pairs"][0]["status"] != "queued"}
        # The similarity of each record's two responses, read from its own matrix, not from the queue.
        paired = sorted(pairs, key=lambda ext: views[ext]["similarity_matrix"][0][1])
        assert len(handed) == len(items) // 2
        assert released == set(paired[: len(items) // 2])


class TestNearDuplicatesInService:
    def test_near_identical_responses_are_collapsed_and_shown(
        self, client: Any, recorded_tasks: list[Any]
    ) -> None:
        project = client.post("/v1/projects", json={"name": "dups", "strategy": "similar"}).json()
        # Same words in another case and spacing: the (uncased) model sees the same text, the hash does not.
        item = {
            "external_id": "p",
            "prompt": "Greet me",
            "responses": [
                "Hello, how are you today?",
                "hello,  how are you TODAY?",
                "Hello, how are you today?",
                "Quantum chromodynamics describes the strong interaction.",
                "   ",
            ],
        }
        ingest_and_embed(client, project["id"], [item], recorded_tasks)
        view = client.get(f"/v1/projects/{project['id']}/prompts/by-external-id/p").json()
        ids = [r["id"] for r in view["responses"]]
        reasons = {c["response_id"]: (c["reason"], c["duplicate_of"]) for c in view["collapsed"]}
        assert view["similarity_matrix"][0][1] >= 0.98
        assert reasons == {
            ids[1]: ("near_duplicate", ids[0]),
            ids[2]: ("exact_duplicate", ids[0]),
            ids[4]: ("empty", None),
        }
        assert len(view["pairs"]) == 1
        assert {view["pairs"][0]["response_a_id"], view["pairs"][0]["response_b_id"]} == {ids[0], ids[3]}


class TestReselect:
    def test_new_strategy_applies_to_prompts_not_yet_handed_out(
        self, client: Any, recorded_tasks: list[Any]
    ) -> None:
        items = load("alpaca_eval_20x4.jsonl")[:5]
        project = client.post("/v1/projects", json={"name": "reselect"}).json()
        pid = project["id"]
        ingest_and_embed(client, pid, items, recorded_tasks)
        claimed = client.post(f"/v1/projects/{pid}/queue/claim").json()
        before = {
            i["external_id"]: client.get(
                f"/v1/projects/{pid}/prompts/by-external-id/{i['external_id']}"
            ).json()
            for i in items
        }
        held = next(e for e, v in before.items() if v["pairs"][0]["status"] == "released")
        assert client.patch(f"/v1/projects/{pid}", json={"strategy": "similar"}).status_code == 200
        result = client.post(f"/v1/projects/{pid}/reselect")
        assert result.status_code == 202
        assert result.json()["prompts"] == len(items) - 1
        run_sent(recorded_tasks)
        job = client.get(f"/v1/jobs/{result.json()['job_id']}").json()
        assert (job["kind"], job["status"], job["done"]) == ("reselect", "succeeded", len(items) - 1)
        for item in items:
            view = client.get(f"/v1/projects/{pid}/prompts/by-external-id/{item['external_id']}").json()
            pair = view["pairs"][0]
            if item["external_id"] == held:
                assert pair == before[held]["pairs"][0]  # handed out: kept as it was
                continue
            matrix = np.array(view["similarity_matrix"])
            np.fill_diagonal(matrix, -2)
            assert pair["strategy"] == "similar"
            assert pair["similarity"] == pytest.approx(matrix.max(), abs=1e-5)
        labelled = client.post(f"/v1/assignments/{claimed['assignment_id']}/label", json={"choice": "a"})
        assert labelled.status_code == 201

    def test_prompt_list_filters(self, client: Any, recorded_tasks: list[Any]) -> None:
        project = client.post("/v1/projects", json={"name": "list"}).json()
        pid = project["id"]
        items = [
            {"external_id": "ok", "prompt": "q", "responses": ["yes", "no"]},
            {"external_id": "same", "prompt": "q", "responses": ["yes", "yes"]},
        ]
        ingest_and_embed(client, pid, items, recorded_tasks)
        assert [
            p["external_id"]
            for p in client.get(f"/v1/projects/{pid}/prompts?status=unpairable").json()["items"]
        ] == ["same"]
        claim = client.post(f"/v1/projects/{pid}/queue/claim").json()
        client.post(f"/v1/assignments/{claim['assignment_id']}/label", json={"choice": "b"})
        labelled = client.get(f"/v1/projects/{pid}/prompts?labelled=true").json()["items"]
        assert [(p["external_id"], p["labels"], p["pairs"], p["responses"]) for p in labelled] == [
            ("ok", 1, 1, 2)
        ]
        assert [
            p["external_id"] for p in client.get(f"/v1/projects/{pid}/prompts?labelled=false").json()["items"]
        ] == ["same"]
        assert hashlib.sha256(b"yes").hexdigest()  # texts are keyed by sha256 (see the embedding tests)
