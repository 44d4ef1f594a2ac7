"""A project's embedding model: chosen at creation, recorded with every vector, re-embedding on change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from app.api.clock import get_now
from app.audit.models import AuditEvent
from app.config import DEFAULT_EMBEDDING_MODEL
from app.db.base import utcnow
from app.embeddings.codec import from_bytes
from app.embeddings.embedder import get_embedder
from app.embeddings.models import Embedding
from app.embeddings.tasks import embed_prompts, embed_texts
from app.pairs.models import Pair, PairSlot
from app.prompts.models import Prompt, Response
from app.prompts.text import prompt_text
from app.queue.models import Assignment, Label
from app.selection.reembed import reembed_project
from tests.factories import grant_annotator, make_pairs, make_project

ITEMS = [
    {
        "external_id": f"p{n}",
        "prompt": f"Question {n}",
        "responses": [
            f"Paris is the capital of France, answer {n}.",
            f"The cat sat on the mat and looked at the dog {n} times.",
            f"Goodbye, see you tomorrow morning at {n}.",
        ],
    }
    for n in range(4)
] + [{"external_id": "single", "prompt": "Only one", "responses": ["Just one answer.", "Just one answer."]}]


def sent_prompt_ids(recorded_tasks: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        i
        for name, kwargs in recorded_tasks
        if name == "embeddings.embed_prompts"
        for i in kwargs["prompt_ids"]
    ]


def ingest_and_embed(client: Any, recorded_tasks: list[Any], model: str) -> dict[str, Any]:
    project = client.post("/v1/projects", json={"name": "model choice", "embedding_model": model})
    assert project.status_code == 201, project.text
    response = client.post(f"/v1/projects/{project.json()['id']}/prompts", json={"items": ITEMS})
    assert response.status_code == 202, response.text
    embed_prompts(sent_prompt_ids(recorded_tasks))
    recorded_tasks.clear()
    return project.json()  # type: ignore[no-any-return]


def pairs_by_prompt(session: Any) -> dict[str, set[tuple[Any, ...]]]:
    session.expire_all()
    rows = session.execute(
        select(Prompt.external_id, Pair.id, Pair.response_a_id, Pair.response_b_id).join(
            Pair, Pair.prompt_id == Prompt.id
        )
    ).all()
    out: dict[str, set[tuple[Any, ...]]] = {}
    for external_id, pair_id, a, b in rows:
        out.setdefault(external_id, set()).add((pair_id, a, b))
    return out


def statuses(session: Any) -> dict[str, str]:
    session.expire_all()
    return dict(session.execute(select(Prompt.external_id, Prompt.status)).all())


def test_a_causal_lm_project_embeds_and_pairs_under_its_folder_name(
    client: Any, session: Any, recorded_tasks: list[Any], tiny_causal_lm: Path
) -> None:
    model = str(tiny_causal_lm)
    project = ingest_and_embed(client, recorded_tasks, model)
    assert project["embedding_model"] == model
    assert client.get(f"/v1/projects/{project['id']}").json()["embedding_model"] == model
    assert statuses(session) == {
        "p0": "paired",
        "p1": "paired",
        "p2": "paired",
        "p3": "paired",
        "single": "unpairable",
    }
    texts = {r.text_sha256: r.text for r in session.scalars(select(Response))}
    # Each prompt is embedded as its own text too (for near-duplicate prompts), under the same model.
    texts |= {p.text_sha256: prompt_text(p.prompt) for p in session.scalars(select(Prompt))}
    stored = {e.text_sha256: e for e in session.scalars(select(Embedding))}
    assert set(stored) == set(texts)  # every distinct text, once, under the project's model only
    assert {e.model for e in stored.values()} == {model}
    assert {e.dim for e in stored.values()} == {32}
    embedder = get_embedder(model)
    for sha, embedding in stored.items():
        direct = embedder.encode([texts[sha]]).vectors[0]
        assert float(np.dot(direct, from_bytes(embedding.vector, embedding.dim))) > 0.9999
    # The pair's similarity is the cosine of the stored causal-LM vectors.
    pair = session.scalars(select(Pair)).first()
    a, b = (session.get(Response, pair.response_a_id), session.get(Response, pair.response_b_id))
    va, vb = (from_bytes(stored[r.text_sha256].vector, 32) for r in (a, b))
    assert pair.similarity == pytest.approx(float(np.dot(va, vb)), abs=1e-5)
    stats = client.get(f"/v1/projects/{project['id']}/stats").json()
    assert (stats["embedded"], stats["pairs"], stats["unpairable"]) == (14, 4, 1)  # responses with a vector


@pytest.mark.embedding
def test_changing_the_model_reembeds_untouched_prompts_and_keeps_claimed_ones(
    client: Any, session: Any, recorded_tasks: list[Any], tiny_causal_lm: Path
) -> None:
    causal = str(tiny_causal_lm)
    project = ingest_and_embed(client, recorded_tasks, causal)
    pid = project["id"]
    before = pairs_by_prompt(session)
    prompt_of = {p.prompt: p.external_id for p in session.scalars(select(Prompt))}

    grant_annotator("ann", pid)
    labelled = client.post(f"/v1/projects/{pid}/queue/claim", json={"annotator": "ann"}).json()
    assert (
        client.post(f"/v1/assignments/{labelled['assignment_id']}/label", json={"choice": "a"}).status_code
        == 201
    )
    abandoned = client.post(f"/v1/projects/{pid}/queue/claim", json={"annotator": "ann"}).json()
    kept = {prompt_of[labelled["prompt"]], prompt_of[abandoned["prompt"]]}
    untouched = {"p0", "p1", "p2", "p3", "single"} - kept
    ids = {p.external_id: str(p.id) for p in session.scalars(select(Prompt))}

    changed = client.patch(f"/v1/projects/{pid}", json={"embedding_model": DEFAULT_EMBEDDING_MODEL})
    assert changed.status_code == 200, changed.text
    assert changed.json()["embedding_model"] == DEFAULT_EMBEDDING_MODEL
    sent = sent_prompt_ids(recorded_tasks)
    assert sorted(sent) == sorted(ids[e] for e in untouched)
    # The prompts that keep their pairs get vectors under the new model too, without being paired again.
    vectors_only = [
        i for name, kw in recorded_tasks if name == "embeddings.embed_texts" for i in kw["prompt_ids"]
    ]
    assert sorted(vectors_only) == sorted(ids[e] for e in kept)
    assert {e: s for e, s in statuses(session).items() if e in untouched} == dict.fromkeys(
        untouched, "pending"
    )
    after_patch = pairs_by_prompt(session)
    assert set(after_patch) == kept  # untouched prompts lost their pairs (and slots) ...
    assert all(after_patch[e] == before[e] for e in kept)  # ... claimed ones kept theirs as they were
    assert session.scalar(select(func.count()).select_from(PairSlot)) == 2
    assert session.scalar(select(func.count()).select_from(Assignment)) == 2
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "project.reembedding")).one()
    assert event.details == {"from": causal, "to": DEFAULT_EMBEDDING_MODEL, "prompts": len(untouched)}

    recorded_tasks.clear()
    embed_prompts(sent)
    assert statuses(session) == {e: ("unpairable" if e == "single" else "paired") for e in ids}
    minilm = {
        e.text_sha256: e
        for e in session.scalars(select(Embedding).where(Embedding.model == DEFAULT_EMBEDDING_MODEL))
    }
    texts = session.execute(select(Prompt.external_id, Response.text_sha256).join(Response)).all()
    texts += session.execute(select(Prompt.external_id, Prompt.text_sha256)).all()
    assert {sha for e, sha in texts if e in untouched} == set(minilm)  # only untouched prompts' texts
    assert {e.dim for e in minilm.values()} == {384}
    rebuilt = pairs_by_prompt(session)
    for external_id in untouched - {"single"}:
        assert rebuilt[external_id].isdisjoint(before[external_id])  # new pair rows, chosen under MiniLM
    assert all(rebuilt[e] == before[e] for e in kept)
    embed_texts(vectors_only)
    session.expire_all()
    minilm_now = set(
        session.scalars(select(Embedding.text_sha256).where(Embedding.model == DEFAULT_EMBEDDING_MODEL))
    )
    assert minilm_now == {sha for _, sha in texts}  # the kept prompts' texts too, now
    assert pairs_by_prompt(session) == rebuilt  # ... without choosing their pairs again
    label = session.scalars(select(Label)).one()
    assert label.assignment_id.hex == labelled["assignment_id"].replace("-", "")

    # The abandoned claim's holder still gets the normal answer once its lease is over.
    client.app.dependency_overrides[get_now] = lambda: utcnow() + timedelta(seconds=601)
    late = client.post(f"/v1/assignments/{abandoned['assignment_id']}/label", json={"choice": "b"})
    assert (late.status_code, late.json()["code"]) == (409, "lease_expired")
    client.app.dependency_overrides.pop(get_now)

    # Switching back finds the causal-LM vectors stored (keyed by model and text): nothing is embedded again.
    causal_vectors = session.scalar(
        select(func.count()).select_from(Embedding).where(Embedding.model == causal)
    )
    assert client.patch(f"/v1/projects/{pid}", json={"embedding_model": causal}).status_code == 200
    embed_prompts(sent_prompt_ids(recorded_tasks))
    session.expire_all()
    assert (
        session.scalar(select(func.count()).select_from(Embedding).where(Embedding.model == causal))
        == causal_vectors
    )
    again = pairs_by_prompt(session)
    for external_id in untouched - {"single"}:
        # Same vectors, same strategy: the same responses are paired as at first.
        assert {(a, b) for _, a, b in again[external_id]} == {(a, b) for _, a, b in before[external_id]}


def test_patching_the_same_model_changes_nothing(
    client: Any, session: Any, recorded_tasks: list[Any], tiny_causal_lm: Path
) -> None:
    project = ingest_and_embed(client, recorded_tasks, str(tiny_causal_lm))
    before = pairs_by_prompt(session)
    response = client.patch(f"/v1/projects/{project['id']}", json={"embedding_model": str(tiny_causal_lm)})
    assert response.status_code == 200
    assert recorded_tasks == []
    assert pairs_by_prompt(session) == before
    assert (
        session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "project.reembedding")
        )
        == 0
    )


class TestUnusableModelNames:
    @pytest.mark.parametrize(
        ("name", "says"),
        [
            ("EleutherAI/pythia-2.8b", "local path"),
            ("relative/model", "absolute path"),
            ("/no/such/model", "not an existing local folder"),
            ("/", "neither a sentence-transformers model"),
            ("", "1 to 500 characters"),
            ("/x" * 251, "1 to 500 characters"),
            ("/" + "x" * 300, "cannot be read"),
            ("/tmp/\x00", "NUL"),
        ],
    )
    def test_create_answers_422_naming_embedding_model(self, client: Any, name: str, says: str) -> None:
        response = client.post("/v1/projects", json={"name": "bad model", "embedding_model": name})
        assert response.status_code == 422
        errors = response.json()["errors"]
        assert [e["field"] for e in errors] == ["body.embedding_model"]
        assert says in errors[0]["message"]

    def test_update_answers_422_and_changes_nothing(self, client: Any, recorded_tasks: list[Any]) -> None:
        project = client.post("/v1/projects", json={"name": "keeps its model"}).json()
        assert project["embedding_model"] == DEFAULT_EMBEDDING_MODEL  # the REAL_EMBEDDING_MODEL default
        for body, field in [
            ({"embedding_model": "gpt2"}, "body.embedding_model"),
            ({"embedding_model": None}, "embedding_model"),
        ]:
            response = client.patch(f"/v1/projects/{project['id']}", json=body)
            assert response.status_code == 422
            assert [e["field"] for e in response.json()["errors"]] == [field]
        assert (
            client.get(f"/v1/projects/{project['id']}").json()["embedding_model"] == DEFAULT_EMBEDDING_MODEL
        )
        assert recorded_tasks == []


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_reembed_project_resets_only_unreleased_prompts(
    backend: str, request: pytest.FixtureRequest, recorded_tasks: list[Any]
) -> None:
    # SQLite takes no row locks (it serialises writers) and must cascade slots through its foreign keys.
    database = request.getfixturevalue("db" if backend == "postgres" else "sqlite_app")
    with database.session() as session:
        project = make_project(session, annotations_per_pair=2)
        pairs = make_pairs(session, project, 3)
        pairs[0].released_at = utcnow()
        session.flush()
        assert reembed_project(session, project) == 2
    sent = sent_prompt_ids(recorded_tasks)
    with database.session() as session:
        left = session.scalars(select(Pair)).all()
        assert [p.id for p in left] == [pairs[0].id]
        assert session.scalar(select(func.count()).select_from(PairSlot)) == 2  # the released pair's own
        pending = {str(p.id) for p in session.scalars(select(Prompt).where(Prompt.status == "pending"))}
        assert pending == set(sent) == {str(p.prompt_id) for p in pairs[1:]}
