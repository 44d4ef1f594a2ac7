"""The `active` strategy on real Postgres: dissimilar until a reward model exists, then the queue follows the
model (refreshed in batches after each refit, prompts re-paired), and no claim waits on a refresh."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.active import acquisition, reward_model
from app.active import tasks as active_tasks
from app.active.refresh import refresh_batch
from app.active.service import latest, model_of
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response
from app.quality import tasks as quality_tasks
from app.selection.service import build_pairs
from tests.active.planted import store_random_vector
from tests.exports.helpers import at, label
from tests.factories import grant_annotator, make_project

pytestmark = pytest.mark.integration
DIM, K = 8, 3


def seed(db: Any, prompts: int, seed: int = 0) -> tuple[uuid.UUID, dict[uuid.UUID, np.ndarray], np.ndarray]:
    """An `active` project of prompts with K responses each (planted vectors), paired by the service."""
    rng = np.random.default_rng(seed)
    vectors: dict[uuid.UUID, np.ndarray] = {}
    with db.session() as s:
        project = make_project(s, strategy="active", annotations_per_pair=1)
        for n in range(prompts):
            prompt = Prompt(
                project_id=project.id,
                external_id=f"p{n}",
                prompt=f"prompt {n}",
                content_sha256=hashlib.sha256(f"p{n}".encode()).hexdigest(),
                status=PromptStatus.PENDING,
            )
            texts = [f"response {r} to {n}" for r in range(K)]
            prompt.responses = [
                Response(position=r, text=t, text_sha256=hashlib.sha256(t.encode()).hexdigest())
                for r, t in enumerate(texts)
            ]
            s.add(prompt)
            s.flush()
            for response in prompt.responses:
                vectors[response.id] = store_random_vector(s, project.embedding_model, response, rng, DIM)
        s.flush()
        build_pairs(s, list(s.scalars(select(Prompt.id).where(Prompt.project_id == project.id))))
        return project.id, vectors, rng.normal(size=DIM)


def label_as_the_queue_would(session: Any, pair: Pair, choice: str, minute: float) -> None:
    """A label on the pair's slot, which is then done (as a claim and a label through the queue leave it)."""
    label(session, pair, "ann1", choice, at(minute))
    pair.labels_count, pair.status = 1, "done"
    for slot in session.scalars(select(PairSlot).where(PairSlot.pair_id == pair.id)):
        slot.done = True


def pairs_of(db: Any, project_id: uuid.UUID) -> dict[uuid.UUID, Pair]:
    with db.session() as s:
        return {p.prompt_id: p for p in s.scalars(select(Pair).where(Pair.project_id == project_id))}


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_without_a_model_active_is_dissimilar(db: Any, recorded_tasks: list[Any]) -> None:
    project_id, vectors, _ = seed(db, 6)
    with db.session() as s:
        responses = {r.id: r for r in s.scalars(select(Response))}
    for pair in pairs_of(db, project_id).values():
        siblings = [r for r in responses.values() if r.prompt_id == pair.prompt_id]
        best = min(
            (float(unit(vectors[a.id]) @ unit(vectors[b.id])), a.id, b.id)
            for a in siblings
            for b in siblings
            if a.position < b.position
        )
        assert {pair.response_a_id, pair.response_b_id} == {best[1], best[2]}
        assert (pair.strategy, pair.priority) == ("active", pytest.approx(1.0 - best[0], abs=1e-6))


def test_after_a_refit_the_queue_follows_the_model(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(reward_min_pairs=10, reward_refit_every_pairs=10)
    project_id, vectors, truth = seed(db, 60)
    before = pairs_of(db, project_id)
    labelled = sorted(before)[:30]
    with db.session() as s:
        for n, prompt_id in enumerate(labelled):
            pair = s.get_one(Pair, before[prompt_id].id)
            diff = unit(vectors[pair.response_a_id]) - unit(vectors[pair.response_b_id])
            label_as_the_queue_would(s, pair, "a" if diff @ truth > 0 else "b", n)
    quality_tasks.aggregate_project(str(project_id))
    assert ("active.refit_reward_model", {"project_id": str(project_id)}) in recorded_tasks
    assert active_tasks.refit_reward_model(str(project_id)) == 1
    assert ("active.refresh_priorities", {"project_id": str(project_id)}) in recorded_tasks
    assert active_tasks.refresh_priorities(str(project_id)) >= 0

    # Independently: the active priority of every pair of each untouched prompt, from the stored model.
    with db.session() as s:
        model = model_of(latest(s, project_id))
        responses = list(s.scalars(select(Response)))
    labelled_units = np.stack(
        [unit(vectors[before[p].response_a_id]) for p in labelled]
        + [unit(vectors[before[p].response_b_id]) for p in labelled]
    )
    after = pairs_of(db, project_id)
    repaired = 0
    for prompt_id in sorted(set(before) - set(labelled)):
        siblings = sorted((r for r in responses if r.prompt_id == prompt_id), key=lambda r: r.position)
        scored = []
        for i in range(K):
            for j in range(i + 1, K):
                a, b = unit(vectors[siblings[i].id]), unit(vectors[siblings[j].id])
                p = reward_model.sigmoid(np.array([model.weights @ (a - b)]))
                near_a, near_b = (labelled_units @ a).max(), (labelled_units @ b).max()
                priority = acquisition.priority([a @ b], p, [near_a], [near_b])[0]
                scored.append((priority, siblings[i].id, siblings[j].id))
        best = max(scored, key=lambda t: t[0])
        pair = after[prompt_id]
        assert {pair.response_a_id, pair.response_b_id} == {best[1], best[2]}
        assert pair.priority == pytest.approx(best[0], abs=1e-6)
        repaired += {pair.response_a_id, pair.response_b_id} != {
            before[prompt_id].response_a_id,
            before[prompt_id].response_b_id,
        }
        with db.session() as s:
            slots = s.scalars(select(PairSlot.priority).where(PairSlot.pair_id == pair.id)).all()
        assert slots == [pytest.approx(pair.priority)]
    assert repaired > 0  # with three candidates, the model changed some prompts' pair
    # The queue hands out the highest active priority first.
    grant_annotator("ann2", project_id)
    claimed = client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": "ann2"})
    assert claimed.status_code == 200, claimed.text
    top = max((after[p] for p in set(before) - set(labelled)), key=lambda pair: pair.priority)
    assert {claimed.json()["response_a"]["id"], claimed.json()["response_b"]["id"]} == {
        str(top.response_a_id),
        str(top.response_b_id),
    }
    # Labelled (touched) prompts keep their pairs.
    for prompt_id in labelled:
        assert after[prompt_id].id == before[prompt_id].id


def test_no_claim_waits_on_a_refresh(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(reward_min_pairs=4, reward_refit_every_pairs=4)
    project_id, vectors, truth = seed(db, 20)
    first = pairs_of(db, project_id)
    with db.session() as s:
        for n, prompt_id in enumerate(sorted(first)[:6]):
            pair = s.get_one(Pair, first[prompt_id].id)
            diff = unit(vectors[pair.response_a_id]) - unit(vectors[pair.response_b_id])
            label_as_the_queue_would(s, pair, "a" if diff @ truth > 0 else "b", n)
    quality_tasks.aggregate_project(str(project_id))
    assert active_tasks.refit_reward_model(str(project_id)) == 1
    grant_annotator("ann2", project_id)
    answers: list[tuple[int, float]] = []
    with db.session() as s:
        project = s.get_one(Project, project_id)
        refresh_batch(s, project, None, limit=20)  # every untouched prompt's slots locked, not committed

        def claim() -> None:
            started = time.monotonic()
            response = client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": "ann2"})
            answers.append((response.status_code, time.monotonic() - started))

        worker = threading.Thread(target=claim)
        worker.start()
        worker.join(timeout=20)
        assert not worker.is_alive(), "the claim waited on the refresh's locks"
    # The claim skipped the locked slots: nothing else was claimable, so it answered at once.
    assert answers[0][0] in (200, 204)
    assert answers[0][1] < 5
