"""Label-error suspects: planted flipped labels on real responses are found; the evidence combines."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.active import suspects
from app.active import tasks as active_tasks
from app.embeddings.codec import to_bytes
from app.embeddings.embedder import DEFAULT_EMBEDDING_MODEL, get_embedder
from app.embeddings.models import Embedding
from app.labels import outcome
from app.pairs.models import Pair, PairSlot, PairStatus
from app.prompts.models import Prompt, PromptStatus, Response
from app.quality import tasks as quality_tasks
from tests.active.planted import store_random_vector
from tests.exports.helpers import at, label
from tests.factories import make_pairs, make_project

log = logging.getLogger(__name__)
DATA = Path(__file__).resolve().parents[2] / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"


class TestEvidence:
    def test_log_odds_add_and_missing_evidence_is_neutral(self) -> None:
        assert suspects.probability_right(None, None) == pytest.approx(0.5)
        assert suspects.probability_right(0.2, None) == pytest.approx(0.2)
        assert suspects.probability_right(None, 0.9) == pytest.approx(0.9)
        assert suspects.probability_right(0.2, 0.8) == pytest.approx(0.5)
        # Odds 1/4 and 3: 3/4 → 0.4286.
        assert suspects.probability_right(0.2, 0.75) == pytest.approx(3 / 7)
        assert 0 < suspects.probability_right(0.0, 0.0) < 1e-9
        assert 1 - 1e-9 < suspects.probability_right(1.0, 1.0) < 1

    def test_reasons_name_each_piece_of_evidence(self) -> None:
        split = outcome.decide((2, 1, 0, 0), None, 3)
        codes = [
            r.code
            for r in suspects.reasons_for(
                model=0.3,
                labels=0.4,
                decided=split,
                voter_reliability=0.5,
                review_threshold=0.7,
                reliability_floor=0.6,
            )
        ]
        assert codes == ["model_disagrees", "labels_disagree", "split_vote", "unreliable_annotators"]
        single = outcome.decide((1, 0, 0, 0), None, 1)
        assert [
            r.code
            for r in suspects.reasons_for(
                model=0.9,
                labels=None,
                decided=single,
                voter_reliability=None,
                review_threshold=0.6,
                reliability_floor=0.7,
            )
        ] == ["single_label"]


def _real_prompts(count: int, per_prompt: int) -> list[dict[str, Any]]:
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in itertools.islice(handle, count)]
    return [{"prompt": r["prompt"], "texts": [x["text"] for x in r["responses"][:per_prompt]]} for r in rows]


@pytest.mark.integration
def test_planted_flips_on_real_responses_are_found(client: Any, db: Any, recorded_tasks: Any) -> None:
    """40 AlpacaEval instructions × 8 real answers, embedded by the real model; every one of the 28 pairs of
    each prompt labelled once by a preference planted in the embeddings' top principal components, 10% of
    the labels flipped. The suspects (p_right < 0.5) must hold at least 80% of the flips."""
    rows = _real_prompts(40, 8)
    texts = [t for r in rows for t in r["texts"]]
    vectors = get_embedder(DEFAULT_EMBEDDING_MODEL).encode(texts).vectors
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    _, _, components = np.linalg.svd(units - units.mean(axis=0), full_matrices=False)
    truth = components[:10].T @ rng.normal(size=10)
    by_sha = {hashlib.sha256(t.encode()).hexdigest(): u for t, u in zip(texts, units, strict=True)}

    with db.session() as s:
        project = make_project(s, embedding_model=DEFAULT_EMBEDDING_MODEL, annotations_per_pair=1)
        for sha, vector in by_sha.items():
            s.add(
                Embedding(
                    model=DEFAULT_EMBEDDING_MODEL,
                    text_sha256=sha,
                    dim=vector.shape[0],
                    vector=to_bytes(vector),
                    token_count=1,
                )
            )
        pairs: list[Pair] = []
        shas: list[tuple[str, str]] = []
        for n, row in enumerate(rows):
            prompt = Prompt(
                project_id=project.id,
                external_id=f"alpaca-{n}",
                prompt=row["prompt"],
                content_sha256=hashlib.sha256(row["prompt"].encode()).hexdigest(),
                status=PromptStatus.PAIRED,
            )
            prompt.responses = [
                Response(position=i, text=t, text_sha256=hashlib.sha256(t.encode()).hexdigest(), model=str(i))
                for i, t in enumerate(row["texts"])
            ]
            s.add(prompt)
            s.flush()
            for first, second in itertools.combinations(prompt.responses, 2):
                if first.text_sha256 == second.text_sha256:
                    continue
                a, b = sorted((first, second), key=lambda r: r.id)
                pair = Pair(
                    project_id=project.id,
                    prompt_id=prompt.id,
                    response_a_id=a.id,
                    response_b_id=b.id,
                    strategy="random",
                    similarity=0.0,
                    priority=0.5,
                    status=PairStatus.DONE,
                    labels_count=1,
                    released_at=at(0),
                )
                s.add(pair)
                s.flush()
                s.add(PairSlot(project_id=project.id, pair_id=pair.id, slot=0, priority=0.5, done=True))
                pairs.append(pair)
                shas.append((a.text_sha256, b.text_sha256))
        flipped: set[uuid.UUID] = set()
        flip = set(rng.choice(len(pairs), size=len(pairs) // 10, replace=False).tolist())
        for n, (pair, (a_sha, b_sha)) in enumerate(zip(pairs, shas, strict=True)):
            a_wins = float((by_sha[a_sha] - by_sha[b_sha]) @ truth) > 0
            if n in flip:
                a_wins = not a_wins
                flipped.add(pair.id)
            label(s, pair, f"ann{n % 5}", "a" if a_wins else "b", at(n))
        project_id = project.id
    assert len(pairs) >= 1000
    assert len(flipped) >= 100

    quality_tasks.aggregate_project(str(project_id))
    assert active_tasks.refit_reward_model(str(project_id)) == 1
    answered = client.get(f"/v1/projects/{project_id}/suspects", params={"limit": 500})
    assert answered.status_code == 200
    body = answered.json()
    found = {uuid.UUID(item["pair_id"]) for item in body["items"]}
    recall = len(found & flipped) / len(flipped)
    precision = len(found & flipped) / max(len(found), 1)
    log.warning(
        "suspects: %d of %d pairs, recall %.3f, precision %.3f", len(found), len(pairs), recall, precision
    )
    assert body["total"] == len(found) < 500
    assert body["decided_pairs"] == len(pairs)
    assert body["model_version"] == 1
    assert recall >= 0.8
    assert precision > 0.2  # 10% would be a random pick
    ranked = [item["probability_right"] for item in body["items"]]
    assert ranked == sorted(ranked)
    assert ranked[-1] < 0.5
    assert all(item["reasons"][0]["code"] == "model_disagrees" for item in body["items"])


@pytest.mark.integration
def test_a_pair_decided_after_the_fit_is_weighed_by_the_newest_model(
    client: Any, db: Any, override_settings: Any, recorded_tasks: Any
) -> None:
    """Pairs the fit had no label for get the newest model's prediction (it never saw their label), and a
    reviewed pair is never a suspect."""
    override_settings(reward_min_pairs=10)
    rng = np.random.default_rng(3)
    truth = rng.normal(size=8)
    with db.session() as s:
        project = make_project(s)
        made = make_pairs(s, project, 61)
        vectors = {
            r.id: store_random_vector(s, project.embedding_model, r, rng, 8)
            for r in s.scalars(select(Response).where(Response.prompt_id.in_([p.prompt_id for p in made])))
        }

        def a_wins(pair: Pair) -> bool:
            a, b = vectors[pair.response_a_id], vectors[pair.response_b_id]
            return float((a / np.linalg.norm(a) - b / np.linalg.norm(b)) @ truth) > 0

        for n, pair in enumerate(made[:60]):
            label(s, pair, "ann1", "a" if a_wins(pair) else "b", at(n))
            pair.labels_count = 1
        project_id, late = project.id, made[60]
    assert active_tasks.refit_reward_model(str(project_id)) == 1
    with db.session() as s:
        pair = s.get_one(Pair, late.id)
        # The late pair is labelled against the planted preference: the model (fitted without it) doubts it.
        label(s, pair, "ann1", "b" if a_wins(pair) else "a", at(61))
        pair.labels_count = 1
        reviewed = s.scalars(select(Pair).where(Pair.project_id == project_id, Pair.id != late.id)).first()
        assert reviewed is not None
        reviewed.review_verdict = "b" if a_wins(reviewed) else "a"
    body = client.get(f"/v1/projects/{project_id}/suspects").json()
    items = {item["pair_id"]: item for item in body["items"]}
    assert str(late.id) in items
    assert items[str(late.id)]["model_probability"] < 0.5
    assert items[str(late.id)]["label_probability"] is None  # no aggregation ran: no Dawid–Skene posterior
    assert str(reviewed.id) not in items
    assert body["decided_pairs"] == 60  # 61 labelled, one reviewed
    with db.session() as s:
        assert s.get_one(Pair, late.id).model_p_a is None  # predicted on read, not stored
