"""The similarity histogram: the selection's own computation on real data and the real model, against an
independent sentence-transformers computation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from app.embeddings.embedder import resolve_model_path
from tests.selection.test_selection_service import ingest_and_embed, load, texts_of


@pytest.mark.embedding
class TestOnRealData:
    def test_histogram_equals_an_independent_computation(
        self, client: Any, recorded_tasks: list[Any]
    ) -> None:
        from sentence_transformers import SentenceTransformer

        items = load("alpaca_eval_20x4.jsonl")
        project = client.post(
            "/v1/projects", json={"name": "real", "near_duplicate_threshold": None, "pairs_per_prompt": 2}
        ).json()
        ingest_and_embed(client, project["id"], items, recorded_tasks)
        independent = SentenceTransformer(resolve_model_path(project["embedding_model"]), device="cpu")
        candidates, selected = [], []
        for item in items:
            vectors = independent.encode(texts_of(item), convert_to_numpy=True, normalize_embeddings=True)
            sims = vectors @ vectors.T
            upper = sorted(float(sims[i, j]) for i in range(4) for j in range(i + 1, 4))
            candidates += upper
            selected += upper[:2]  # dissimilar, two pairs a prompt: the two least similar
        body = client.get(f"/v1/projects/{project['id']}/dashboard/similarity", params={"bins": 50}).json()
        edges = np.linspace(-1, 1, 51)
        assert body["edges"] == pytest.approx(edges.tolist())
        assert (body["prompts"], body["prompts_sampled"], body["prompts_skipped"]) == (20, 20, 0)
        assert (body["candidate_pairs"], body["selected_pairs"], body["near_duplicate_pairs"]) == (120, 40, 0)
        assert body["candidates"] == np.histogram(candidates, bins=edges)[0].tolist()
        assert body["selected"] == np.histogram(selected, bins=edges)[0].tolist()
        assert body["candidate_mean"] == pytest.approx(np.mean(candidates), abs=1e-5)
        assert body["selected_mean"] == pytest.approx(np.mean(selected), abs=1e-5)
        # What REAL does to the data: the chosen pairs are the dissimilar end of the candidates.
        assert body["selected_mean"] < body["candidate_mean"]

        sample = client.get(
            f"/v1/projects/{project['id']}/dashboard/similarity", params={"max_prompts": 5}
        ).json()
        assert (sample["prompts_sampled"], sample["candidate_pairs"], sample["selected_pairs"]) == (5, 30, 10)
        again = client.get(f"/v1/projects/{project['id']}/dashboard/similarity", params={"max_prompts": 5})
        assert again.json() == sample  # the sample is seeded by the project

        refused = client.get(
            f"/v1/projects/{project['id']}/dashboard/similarity", params={"max_prompts": 5001}
        )
        assert refused.status_code == 422
        assert "max_prompts" in refused.text
