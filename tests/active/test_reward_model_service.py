"""The project's reward model: fitted from decided pairs on real Postgres, refit after new decisions."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from app.active import service
from app.active import tasks as active_tasks
from app.prompts.models import Response
from app.quality import tasks as quality_tasks
from tests.active.planted import store_random_vector
from tests.exports.helpers import at, label
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.integration
DIM = 8


def seed(db: Any, pairs: int, *, seed: int = 0, ties: int = 0) -> tuple[str, np.ndarray]:
    """Pairs whose responses have planted vectors; each is labelled by a hidden linear preference (the
    first `ties` pairs are labelled tie instead)."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=DIM)
    with db.session() as s:
        project = make_project(s, annotations_per_pair=1)
        made = make_pairs(s, project, pairs)
        vectors: dict[Any, np.ndarray] = {}
        for response in s.scalars(
            select(Response).where(Response.prompt_id.in_([p.prompt_id for p in made]))
        ):
            vectors[response.id] = store_random_vector(s, project.embedding_model, response, rng, DIM)
        for n, pair in enumerate(made):
            a, b = vectors[pair.response_a_id], vectors[pair.response_b_id]
            unit_diff = a / np.linalg.norm(a) - b / np.linalg.norm(b)
            choice = "tie" if n < ties else ("a" if unit_diff @ truth > 0 else "b")
            label(s, pair, "ann1", choice, at(n))
            pair.labels_count = 1
        return str(project.id), truth


def test_aggregation_asks_for_a_fit_and_the_fit_predicts_held_out_choices(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(reward_min_pairs=10, reward_refit_every_pairs=25)
    pid, _ = seed(db, 120, ties=10)
    assert client.get(f"/v1/projects/{pid}/reward-model").json()["current"] is None
    quality_tasks.aggregate_project(pid)
    assert ("active.refit_reward_model", {"project_id": pid}) in recorded_tasks
    assert active_tasks.refit_reward_model(pid) == 1
    state = client.get(f"/v1/projects/{pid}/reward-model").json()
    current = state["current"]
    assert (current["version"], current["pairs_used"], current["labels_used"]) == (
        1,
        110,
        110,
    )  # ties left out
    assert current["features"] == "diff"
    assert current["cv_accuracy"] > 0.8
    assert current["cv_log_loss"] < 0.6
    assert state["decided_pairs"] == 110
    assert [fit["version"] for fit in state["history"]] == [1]


def test_no_refit_until_enough_new_pairs_are_decided(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(reward_min_pairs=10, reward_refit_every_pairs=25)
    pid, _ = seed(db, 30)
    quality_tasks.aggregate_project(pid)
    active_tasks.refit_reward_model(pid)
    recorded_tasks.clear()
    with db.session() as s:
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 30 + 24) is False
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 30 + 25) is True


def test_refits_space_out_as_the_project_grows(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    # A fit reads every decided pair, so one refit per 25 new pairs would cost O(n^2) over a project's life
    # (it took 44% of a busy API's CPU at 50 annotators): the next refit waits for 10% more pairs than the
    # last one used, and at least 25.
    override_settings(reward_min_pairs=10, reward_refit_every_pairs=25, reward_refit_growth=0.1)
    pid, _ = seed(db, 300)
    quality_tasks.aggregate_project(pid)
    active_tasks.refit_reward_model(pid)
    recorded_tasks.clear()
    with db.session() as s:
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 300 + 25) is False
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 300 + 29) is False
        assert recorded_tasks == []
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 300 + 30) is True
    assert client.get(f"/v1/projects/{pid}/reward-model").json()["next_refit_at_pairs"] == 330
    override_settings(reward_refit_growth=0.0)  # every 25, whatever the size
    with db.session() as s:
        assert service.schedule_refit_if_due(s, uuid.UUID(pid), 300 + 25) is True


def test_refit_on_demand_adds_a_version(client: Any, db: Any, recorded_tasks: list[Any]) -> None:
    pid, _ = seed(db, 40)
    answered = client.post(f"/v1/projects/{pid}/reward-model/refit")
    assert answered.status_code == 202
    assert answered.json()["current_version"] is None
    assert recorded_tasks == [("active.refit_reward_model", {"project_id": pid})]
    assert active_tasks.refit_reward_model(pid) == 1
    assert active_tasks.refit_reward_model(pid) == 2
    history = client.get(f"/v1/projects/{pid}/reward-model").json()["history"]
    assert [fit["version"] for fit in history] == [2, 1]


def test_too_few_decided_pairs_fit_nothing(
    db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(reward_min_pairs=10)
    pid, _ = seed(db, 9)
    assert active_tasks.refit_reward_model(pid) is None
    quality_tasks.aggregate_project(pid)
    assert not [name for name, _ in recorded_tasks if name == "active.refit_reward_model"]
