"""Prompt vectors and near-duplicate prompts across a project, on the real MiniLM model."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.background import resolve
from app.config import DEFAULT_EMBEDDING_MODEL
from app.embeddings.codec import from_bytes
from app.embeddings.embedder import get_embedder
from app.embeddings.models import Embedding
from app.neighbors import index as index_module
from app.neighbors.index import TextKind, newest_manifest, versions
from app.neighbors.service import folder_for
from app.projects.models import Project
from app.prompts.models import Prompt

pytestmark = pytest.mark.embedding

BREAD = "How do I bake a loaf of sourdough bread at home?"
CAPITAL = "What is the capital of France?"
ANSWERS = [
    "Preheat the oven to 220 degrees, then bake the loaf for about forty minutes.",
    "Sourdough needs a mature starter, flour, water and salt.",
]
ITEMS: list[dict[str, Any]] = [
    {"external_id": "bread", "prompt": BREAD, "responses": ANSWERS},
    # A paraphrase (cosine 0.994 under MiniLM), and the identical text under another external id.
    {
        "external_id": "bread-paraphrase",
        "prompt": "How can I bake a loaf of sourdough bread at home?",
        "responses": ANSWERS,
    },
    {"external_id": "bread-again", "prompt": BREAD, "responses": ANSWERS},
    # A chat prompt is embedded as its role-tagged turns: the same text as this string prompt.
    {
        "external_id": "chat-capital",
        "prompt": [{"role": "user", "content": CAPITAL}],
        "responses": ["Paris.", "Lyon."],
    },
    {"external_id": "string-capital", "prompt": f"User: {CAPITAL}", "responses": ["Paris.", "Berlin."]},
    # The bare question is close to the chat one (0.9) but under the threshold.
    {"external_id": "capital-plain", "prompt": CAPITAL, "responses": ["Paris is the capital.", "Rome."]},
    # A response with the same text as a prompt shares its vector (keyed by model and text).
    {
        "external_id": "haiku",
        "prompt": "Write a haiku about autumn leaves.",
        "responses": [CAPITAL, "Red leaves fall."],
    },
    {
        "external_id": "vaccines",
        "prompt": [
            {"role": "system", "content": "You are a careful doctor."},
            {"role": "user", "content": "Explain how vaccines train the immune system."},
        ],
        "responses": ["They show the body a harmless piece of a germ.", "Vaccines are injections."],
    },
]
# The texts the prompts are embedded as, written out independently of app/prompts/text.py.
RENDERED = {
    "bread": BREAD,
    "bread-paraphrase": "How can I bake a loaf of sourdough bread at home?",
    "bread-again": BREAD,
    "chat-capital": f"User: {CAPITAL}",
    "string-capital": f"User: {CAPITAL}",
    "capital-plain": CAPITAL,
    "haiku": "Write a haiku about autumn leaves.",
    "vaccines": "System: You are a careful doctor.\n\nUser: Explain how vaccines train the immune system.",
}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_tasks(recorded: list[Any]) -> None:
    """Run recorded tasks (and those they send) here, as a worker would."""
    while recorded:
        name, kwargs = recorded.pop(0)
        resolve(name)(**kwargs)


@pytest.fixture
def project(client: Any, recorded_tasks: list[Any]) -> dict[str, Any]:
    created = client.post("/v1/projects", json={"name": "prompt duplicates"}).json()
    assert client.post(f"/v1/projects/{created['id']}/prompts", json={"items": ITEMS}).status_code == 202
    # Embedding only: the index build it asks for is left for the test.
    for name, kwargs in [t for t in recorded_tasks if t[0] == "embeddings.embed_prompts"]:
        resolve(name)(**kwargs)
    recorded_tasks.clear()
    index_module.clear_cache()
    return created  # type: ignore[no-any-return]


def test_prompts_are_embedded_alone_and_share_the_vector_cache(project: dict[str, Any], db: Any) -> None:
    with db.session() as session:
        prompts = {p.external_id: p for p in session.scalars(select(Prompt))}
        stored = {
            e.text_sha256: from_bytes(e.vector, e.dim)
            for e in session.scalars(select(Embedding).where(Embedding.model == DEFAULT_EMBEDDING_MODEL))
        }
    assert {e: p.text_sha256 for e, p in prompts.items()} == {e: sha(t) for e, t in RENDERED.items()}
    responses = {r if isinstance(r, str) else r["text"] for item in ITEMS for r in item["responses"]}
    # One row per distinct text, whether a response's or a prompt's (CAPITAL is both).
    assert set(stored) == {sha(t) for t in responses | set(RENDERED.values())}
    assert (
        len(stored) == len(responses | set(RENDERED.values())) < len(responses) + len(set(RENDERED.values()))
    )
    texts = sorted(set(RENDERED.values()))
    direct = get_embedder(DEFAULT_EMBEDDING_MODEL).encode(texts).vectors
    for text, vector in zip(texts, direct, strict=True):
        assert float(np.dot(vector, stored[sha(text)])) > 0.9999


def test_near_duplicate_prompts_in_stats_on_the_fly_and_from_the_built_index(
    client: Any, project: dict[str, Any], db: Any, recorded_tasks: list[Any]
) -> None:
    pid = project["id"]
    # Independent reference: brute-force cosine over the rendered prompt texts, embedded directly.
    names = list(RENDERED)
    vectors = get_embedder(DEFAULT_EMBEDDING_MODEL).encode([RENDERED[n] for n in names]).vectors
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -1.0)
    with_duplicates = {n for n, row in zip(names, sims, strict=True) if row.max() >= 0.98}
    assert with_duplicates == {"bread", "bread-paraphrase", "bread-again", "chat-capital", "string-capital"}
    pairs_at_threshold = int(np.triu(sims >= 0.98, k=1).sum())
    assert pairs_at_threshold == 4  # the bread trio (3) and the two capital prompts

    on_the_fly = client.get(f"/v1/projects/{pid}/neighbors/stats").json()
    resolve("neighbors.build_index")(project_id=pid)
    with db.session() as session:
        folder = folder_for(session.get_one(Project, uuid.UUID(pid)), TextKind.PROMPTS)
    assert versions(folder) == [1]
    manifest = newest_manifest(folder)
    assert manifest is not None
    assert manifest.count == len(set(RENDERED.values())) == 6
    from_file = client.get(f"/v1/projects/{pid}/neighbors/stats").json()
    assert on_the_fly["prompt_index"]["source"] == "on_the_fly"
    assert from_file["prompt_index"]["source"] == "file"
    assert from_file["prompt_index"]["version"] == 1
    for body in (on_the_fly, from_file):
        assert body["embedded_prompt_texts"] == 6
        assert body["prompts_with_near_duplicates"] == len(with_duplicates)
        assert body["near_duplicate_prompt_pairs"] == pairs_at_threshold
        assert body["exact_duplicate_prompt_pairs"] == 2  # bread / bread-again, chat / string
        assert body["prompt_group_count"] == 2
        groups = body["prompt_groups"]
        assert [g["size"] for g in groups] == [3, 2]
        assert [p["external_id"] for p in groups[0]["prompts"]] == [
            "bread",
            "bread-again",
            "bread-paraphrase",
        ]
        assert [p["external_id"] for p in groups[1]["prompts"]] == ["chat-capital", "string-capital"]
        assert groups[0]["min_similarity"] == pytest.approx(float(sims[0, 1]), abs=1e-4)
        assert groups[1]["min_similarity"] == 1.0
        # The response figures are still about responses only.
        assert body["embedded_texts"] == len({r for i in ITEMS for r in i["responses"]})
    # Nothing new: the next build skips both indexes.
    resolve("neighbors.build_index")(project_id=pid)
    assert versions(folder) == [1]
    assert recorded_tasks == []  # the project does not skip redundant pairs: no marking asked for
