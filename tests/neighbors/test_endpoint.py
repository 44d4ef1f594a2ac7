"""The neighbour routes and the build task on a small project embedded by the real model."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.embeddings.codec import from_bytes
from app.embeddings.models import Embedding
from app.embeddings.tasks import embed_prompts
from app.neighbors import index as index_module
from app.neighbors.index import building, versions
from app.neighbors.service import folder_for
from app.neighbors.tasks import build_index
from app.projects.models import Project
from app.prompts.models import Response

pytestmark = pytest.mark.embedding

CAT = "The cat sat on the mat."
ITEMS = [
    {"external_id": "p1", "prompt": "q1", "responses": [CAT, "Paris is the capital of France."]},
    {
        "external_id": "p2",
        "prompt": "q2",
        "responses": ["A cat was sitting on the mat.", "Stocks fell sharply."],
    },
    {"external_id": "p3", "prompt": "q3", "responses": ["The capital of France is Paris.", CAT]},
    {
        "external_id": "p4",
        "prompt": "q4",
        "responses": ["The cat sat on the mat", "Bananas are rich in potassium."],
    },
]


def ingest(client: Any, recorded: list[Any], project_id: str, items: list[dict[str, Any]]) -> list[list[str]]:
    """Ingest without running tasks; the embedding tasks' prompt-id chunks, in order."""
    recorded.clear()
    assert client.post(f"/v1/projects/{project_id}/prompts", json={"items": items}).status_code == 202
    chunks = [kwargs["prompt_ids"] for name, kwargs in recorded if name == "embeddings.embed_prompts"]
    recorded.clear()
    return chunks


def response_ids(client: Any, project_id: str, external_id: str) -> list[str]:
    body = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/{external_id}").json()
    return [r["id"] for r in body["responses"]]


@pytest.fixture
def project(client: Any, recorded_tasks: list[Any]) -> dict[str, Any]:
    """A project with ITEMS ingested and embedded (no index file built yet)."""
    created = client.post("/v1/projects", json={"name": "neighbours"}).json()
    for chunk in ingest(client, recorded_tasks, created["id"], ITEMS):
        embed_prompts(chunk)
    # Embedding asks for an index build after commit (recorded here, not run).
    assert ("neighbors.build_index", {"project_id": created["id"]}) in recorded_tasks
    index_module.clear_cache()
    return created


def neighbours(client: Any, project_id: str, response_id: str, k: int = 3) -> Any:
    return client.get(f"/v1/projects/{project_id}/responses/{response_id}/neighbors", params={"k": k})


def test_neighbours_on_the_fly_then_from_the_built_file(client: Any, project: dict[str, Any]) -> None:
    pid = project["id"]
    cat, paris = response_ids(client, pid, "p1")
    cat_sitting = response_ids(client, pid, "p2")[0]
    paris_again, cat_again = response_ids(client, pid, "p3")
    cat_no_stop = response_ids(client, pid, "p4")[0]

    first = neighbours(client, pid, cat)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["index"]["source"] == "on_the_fly"
    # The identical text is listed apart, not as a neighbour; the response itself is in neither list.
    assert [d["response_id"] for d in body["exact_duplicates"]] == [cat_again]
    assert body["exact_duplicates"][0]["prompt_external_id"] == "p3"
    ranked = [n["response_id"] for n in body["neighbors"]]
    assert ranked[:2] == [cat_no_stop, cat_sitting]
    assert len(ranked) == 3
    assert cat not in ranked
    assert cat_again not in ranked
    sims = [n["similarity"] for n in body["neighbors"]]
    assert sims == sorted(sims, reverse=True)
    assert body["neighbors"][0]["text"] == "The cat sat on the mat"
    assert body["neighbors"][0]["prompt_external_id"] == "p4"

    build_index(pid)
    second = neighbours(client, pid, cat).json()
    assert second["index"]["source"] == "file"
    assert second["index"]["version"] == 1
    assert second["index"]["kind"] == "exact"
    assert second["index"]["indexed_texts"] == 7  # 8 responses, CAT twice
    assert second["neighbors"] == body["neighbors"]
    assert second["exact_duplicates"] == body["exact_duplicates"]

    # k larger than the project: every other response once (both CAT responses: 8 - 1 = 7).
    everything = neighbours(client, pid, paris, k=100).json()
    listed = [n["response_id"] for n in everything["neighbors"]]
    assert len(listed) == len(set(listed)) == 7
    assert paris_again in listed
    assert paris not in listed


def test_hnsw_file_gives_the_same_neighbours(
    client: Any, project: dict[str, Any], override_settings: Any
) -> None:
    pid = project["id"]
    cat = response_ids(client, pid, "p1")[0]
    exact = neighbours(client, pid, cat, k=5).json()["neighbors"]
    override_settings(neighbors_hnsw_threshold=0)
    build_index(pid)
    body = neighbours(client, pid, cat, k=5).json()
    assert body["index"]["kind"] == "hnsw"
    assert [n["response_id"] for n in body["neighbors"]] == [n["response_id"] for n in exact]
    np.testing.assert_allclose(
        [n["similarity"] for n in body["neighbors"]], [n["similarity"] for n in exact], atol=1e-5
    )


def test_another_projects_response_and_bad_k(
    client: Any, project: dict[str, Any], recorded_tasks: list[Any]
) -> None:
    other = client.post("/v1/projects", json={"name": "other"}).json()
    for chunk in ingest(client, recorded_tasks, other["id"], [ITEMS[0] | {"external_id": "o1"}]):
        embed_prompts(chunk)
    foreign = response_ids(client, other["id"], "o1")[0]
    own = response_ids(client, project["id"], "p1")[0]
    missing = neighbours(client, project["id"], foreign)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    assert neighbours(client, project["id"], str(uuid.uuid4())).status_code == 404
    assert neighbours(client, other["id"], foreign).status_code == 200
    for k in (0, 101):
        bad = neighbours(client, project["id"], own, k=k)
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "query.k"


def test_index_not_ready(
    client: Any, db: Any, project: dict[str, Any], recorded_tasks: list[Any], override_settings: Any
) -> None:
    pid = project["id"]
    ingest(client, recorded_tasks, pid, [{"external_id": "late", "prompt": "q", "responses": ["x y z", "z"]}])
    unembedded = response_ids(client, pid, "late")[0]
    answer = neighbours(client, pid, unembedded)
    assert answer.status_code == 409
    assert answer.json()["code"] == "index_not_ready"
    # Too big to rank on the fly and no file yet: 409, and a build is requested.
    override_settings(neighbors_on_the_fly_max_vectors=0)
    recorded_tasks.clear()
    answer = neighbours(client, pid, response_ids(client, pid, "p1")[0])
    assert answer.status_code == 409
    assert answer.json()["code"] == "index_not_ready"
    assert answer.headers["Retry-After"] == "60"
    assert recorded_tasks == [("neighbors.build_index", {"project_id": pid})]
    # While a build is running, polling clients do not queue more builds.
    with db.session() as session, building(folder_for(session.get_one(Project, uuid.UUID(pid)))):
        assert neighbours(client, pid, response_ids(client, pid, "p1")[0]).status_code == 409
    assert len(recorded_tasks) == 1
    stats = client.get(f"/v1/projects/{pid}/neighbors/stats")
    assert stats.status_code == 409


def test_stats_count_near_and_exact_duplicates(client: Any, project: dict[str, Any], db: Any) -> None:
    pid = project["id"]
    with db.session() as session:
        model = session.get_one(Project, uuid.UUID(pid)).embedding_model
        # Response texts only: the prompts' own vectors are stored beside them and indexed apart.
        response_texts = select(Response.text_sha256)
        vectors = np.stack(
            [
                from_bytes(e.vector, e.dim)
                for e in session.scalars(
                    select(Embedding).where(
                        Embedding.model == model, Embedding.text_sha256.in_(response_texts)
                    )
                )
            ]
        )
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    expected_pairs = int(np.triu(sims >= 0.98, k=1).sum())  # every text is in one response here, but CAT
    assert expected_pairs >= 1  # "The cat sat on the mat." / "The cat sat on the mat"

    on_the_fly = client.get(f"/v1/projects/{pid}/neighbors/stats").json()
    build_index(pid)
    from_file = client.get(f"/v1/projects/{pid}/neighbors/stats").json()
    assert on_the_fly["index"]["source"] == "on_the_fly"
    assert from_file["index"]["source"] == "file"
    for body in (on_the_fly, from_file):
        assert body["threshold"] == 0.98
        assert body["embedded_texts"] == 7
        assert body["near_duplicate_text_pairs"] == expected_pairs
        assert body["exact_duplicate_response_pairs"] == 1
        assert body["responses_with_exact_duplicates"] == 2
        # The CAT text stands for two responses: its pair with the unpunctuated copy counts twice.
        assert body["near_duplicate_response_pairs"] >= expected_pairs + 1
        assert body["responses_with_near_duplicates"] >= 3


def test_build_is_debounced_while_an_ingest_is_in_flight(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(embed_chunk_prompts=1)
    created = client.post("/v1/projects", json={"name": "debounce"}).json()
    pid = created["id"]
    items = [
        {"external_id": f"d{n}", "prompt": "q", "responses": [f"answer {n} one", f"answer {n} two"]}
        for n in range(3)
    ]
    chunks = ingest(client, recorded_tasks, pid, items)
    assert len(chunks) == 3
    with db.session() as session:
        folder = folder_for(session.get_one(Project, uuid.UUID(pid)))

    embed_prompts(chunks[0])
    build_index(pid)
    assert versions(folder) == [1]  # no index yet: the first chunk builds one
    embed_prompts(chunks[1])
    build_index(pid)
    assert versions(folder) == [1]  # new vectors, but chunk 3 is still pending and v1 is fresh: deferred
    embed_prompts(chunks[2])
    build_index(pid)
    assert versions(folder) == [2, 1]  # the chunk that drained the project rebuilt
    build_index(pid)
    assert versions(folder) == [2, 1]  # nothing new: skipped
    build_index(pid, force=True)
    assert versions(folder) == [3, 2, 1]
    sent = [kwargs for name, kwargs in recorded_tasks if name == "neighbors.build_index"]
    assert sent == [{"project_id": pid}] * 3  # one request per embedding chunk; the task decides
