"""Redundant pairs (skip_redundant_pairs): held back, never handed out, explained, and restored.

Real MiniLM vectors; similarities noted beside the texts were measured with all-MiniLM-L6-v2.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text

from app.background import periodic_tasks, resolve
from app.db.base import utcnow
from app.neighbors import index as index_module
from app.neighbors.tasks import mark_redundant
from app.pairs import repository as pairs_repository
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.prompts.models import Prompt
from app.queue import service as queue_service
from app.queue.models import Assignment
from tests.factories import grant_annotator

pytestmark = pytest.mark.embedding

OVEN = "Preheat the oven to 220 degrees, then bake the loaf for about forty minutes until the crust is brown."
OVEN_REWORDED = (
    "Preheat the oven to 220 degrees and bake the loaf for about forty minutes, until the crust is brown."
)
BANANA = "Bananas are rich in potassium and make a quick snack."
BANANA_NO_STOP = "Bananas are rich in potassium and make a quick snack"  # 0.994 to BANANA
BANANA_REPHRASED = "Bananas are rich in potassium, and they make a quick snack."  # 0.973: under 0.98

LABELLED = {"external_id": "labelled", "prompt": "How do I bake bread?", "responses": [OVEN, BANANA]}
# Both responses near-copies of the labelled pair's: redundant.
COPY = {
    "external_id": "copy",
    "prompt": "Tell me about baking.",
    "responses": [OVEN_REWORDED, BANANA_NO_STOP],
}
# Only one response has a labelled near-duplicate: kept.
HALF = {"external_id": "half", "prompt": "Bread or bananas?", "responses": [OVEN.lower(), BANANA_REPHRASED]}
FRESH = {
    "external_id": "fresh",
    "prompt": "Any history?",
    "responses": [
        "The French Revolution began in 1789 with the storming of the Bastille.",
        "I would rather not help with that request.",
    ],
}


# The tasks this feature chains (others a label sends, such as quality aggregation, are not run here).
CHAIN = ("embeddings.embed_prompts", "neighbors.build_index", "neighbors.mark_redundant")


def run_tasks(recorded: list[Any], skip: tuple[str, ...] = ()) -> list[str]:
    """Run the recorded CHAIN tasks (and those they send) here, as a worker would; returns the names run."""
    ran: list[str] = []
    while recorded:
        name, kwargs = recorded.pop(0)
        if name in CHAIN and name not in skip:
            resolve(name)(**kwargs)
            ran.append(name)
    return ran


def ingest(client: Any, recorded: list[Any], pid: str, *items: dict[str, Any]) -> None:
    assert client.post(f"/v1/projects/{pid}/prompts", json={"items": list(items)}).status_code == 202


def claim(client: Any, pid: str, annotator: str = "ann") -> Any:
    grant_annotator(annotator, pid)  # an admin claims only for a real annotator
    return client.post(f"/v1/projects/{pid}/queue/claim", json={"annotator": annotator})


def pair_of(client: Any, pid: str, external_id: str) -> dict[str, Any]:
    view = client.get(f"/v1/projects/{pid}/prompts/by-external-id/{external_id}").json()
    assert len(view["pairs"]) == 1
    return view["pairs"][0]  # type: ignore[no-any-return]


def slots_done(db: Any, pair_id: str) -> list[bool]:
    with db.session() as session:
        return list(
            session.scalars(
                select(PairSlot.done).where(PairSlot.pair_id == uuid.UUID(pair_id)).order_by(PairSlot.slot)
            )
        )


def pair_id_of(db: Any, assignment_id: str) -> str:
    with db.session() as session:
        return str(session.get_one(Assignment, uuid.UUID(assignment_id)).pair_id)


def labelled_project(
    client: Any, recorded: list[Any], *, annotations_per_pair: int = 1, **settings: Any
) -> tuple[str, dict[str, Any]]:
    """A project with LABELLED ingested, embedded, indexed and labelled once; returns (id, labelled pair)."""
    created = client.post(
        "/v1/projects",
        json={
            "name": "redundancy",
            "skip_redundant_pairs": True,
            "annotations_per_pair": annotations_per_pair,
            "gold_rate": 0,
            **settings,
        },
    )
    assert created.status_code == 201, created.text
    pid = created.json()["id"]
    assert created.json()["skip_redundant_pairs"] is True
    index_module.clear_cache()
    ingest(client, recorded, pid, LABELLED)
    run_tasks(recorded)
    got = claim(client, pid)
    assert got.status_code == 200, got.text
    labelled = client.post(f"/v1/assignments/{got.json()['assignment_id']}/label", json={"choice": "a"})
    assert labelled.status_code == 201, labelled.text
    return pid, pair_of(client, pid, "labelled") | {"assignment_id": got.json()["assignment_id"]}


def test_a_pair_of_near_copies_is_never_handed_out_and_comes_back_when_the_setting_is_off(
    client: Any, db: Any, recorded_tasks: list[Any]
) -> None:
    pid, labelled = labelled_project(client, recorded_tasks)
    ingest(client, recorded_tasks, pid, COPY, HALF, FRESH)
    ran = run_tasks(recorded_tasks)
    # Embedding asks for an index build; the build, for this project, asks for the marking.
    assert ran == ["embeddings.embed_prompts", "neighbors.build_index", "neighbors.mark_redundant"]

    copy, half, fresh = (pair_of(client, pid, e) for e in ("copy", "half", "fresh"))
    assert (copy["status"], half["status"], fresh["status"]) == ("redundant", "queued", "queued")
    assert (half["redundant_with"], fresh["redundant_with"]) == (None, None)
    why = copy["redundant_with"]
    by_text = {
        r["text"]: r["id"]
        for r in client.get(f"/v1/projects/{pid}/prompts/by-external-id/labelled").json()["responses"]
    }
    copy_texts = {
        r["id"]: r["text"]
        for r in client.get(f"/v1/projects/{pid}/prompts/by-external-id/copy").json()["responses"]
    }
    expected_match = {OVEN_REWORDED: by_text[OVEN], BANANA_NO_STOP: by_text[BANANA]}
    for side in ("response_a", "response_b"):
        mine = copy_texts[copy[f"{side}_id"]]
        assert why[side]["similar_response_id"] == expected_match[mine]
        assert why[side]["labelled_pair_id"] == labelled["id"]
        assert 0.98 <= why[side]["similarity"] <= 1.0
    assert why["threshold"] == 0.98
    assert why["index_version"] == 2  # the build after the second ingest
    assert slots_done(db, copy["id"]) == [True]
    listed = client.get(f"/v1/projects/{pid}/pairs", params={"status": "redundant"}).json()["items"]
    assert [(p["id"], p["redundant_with"]) for p in listed] == [(copy["id"], why)]
    assert client.get(f"/v1/projects/{pid}/stats").json()["redundant_pairs"] == 1
    assert mark_redundant(pid) == {"marked": 0, "restored": 0}  # idempotent

    # Claims hand out the other two pairs, then nothing: the redundant pair is never seen.
    handed: set[str] = set()
    for annotator in ("ann", "bob", "ann", "bob"):
        got = claim(client, pid, annotator)
        if got.status_code == 200:
            handed.add(pair_id_of(db, got.json()["assignment_id"]))
    assert handed == {half["id"], fresh["id"]}
    assert claim(client, pid, "carol").status_code == 204

    # Off: the pair is queued again (its slot reopened) and handed out.
    changed = client.patch(f"/v1/projects/{pid}", json={"skip_redundant_pairs": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["skip_redundant_pairs"] is False
    restored = pair_of(client, pid, "copy")
    assert (restored["status"], restored["redundant_with"]) == ("queued", None)
    assert slots_done(db, copy["id"]) == [False]
    assert client.get(f"/v1/projects/{pid}/stats").json()["redundant_pairs"] == 0
    assert [t for t in recorded_tasks if t[0] == "neighbors.mark_redundant"] == []
    assert mark_redundant(pid) == {"marked": 0, "restored": 0}  # off: nothing to hold back
    got = claim(client, pid, "carol")
    assert got.status_code == 200
    assert pair_id_of(db, got.json()["assignment_id"]) == copy["id"]

    # On again: the marking is asked for, and a pair handed out meanwhile is left alone.
    assert client.patch(f"/v1/projects/{pid}", json={"skip_redundant_pairs": True}).status_code == 200
    assert recorded_tasks == [("neighbors.mark_redundant", {"project_id": pid})]
    run_tasks(recorded_tasks)
    assert pair_of(client, pid, "copy")["status"] == "released"


def test_reselect_and_undo_keep_redundancy_in_step(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(undo_window_seconds=3600)  # the undo below must not race a slow machine
    pid, labelled = labelled_project(client, recorded_tasks, annotations_per_pair=2)
    ingest(client, recorded_tasks, pid, COPY)
    run_tasks(recorded_tasks)
    first = pair_of(client, pid, "copy")
    assert first["status"] == "redundant"
    assert slots_done(db, first["id"]) == [True, True]  # every slot of the pair

    # Reselect: a redundant pair was never handed out, so its prompt is chosen again; the new pair is
    # held back again once the tasks ran (the index is unchanged: the build skips, the marking runs).
    result = client.post(f"/v1/projects/{pid}/reselect")
    assert result.status_code == 202, result.text
    assert result.json()["prompts"] == 1  # the labelled prompt keeps its pair
    assert run_tasks(recorded_tasks) == [
        "embeddings.embed_prompts",
        "neighbors.build_index",
        "neighbors.mark_redundant",
    ]
    again = pair_of(client, pid, "copy")
    assert again["id"] != first["id"]
    assert again["status"] == "redundant"
    assert pair_of(client, pid, "labelled")["id"] == labelled["id"]

    # The only label is withdrawn: nothing is labelled any more, so the pair is queued again.
    assert client.delete(f"/v1/assignments/{labelled['assignment_id']}/label").status_code == 204
    assert mark_redundant(pid) == {"marked": 0, "restored": 1}
    assert pair_of(client, pid, "copy")["status"] == "queued"
    assert slots_done(db, again["id"]) == [False, False]


def _wait_for_a_lock_wait(db: Any, timeout: float = 20.0) -> None:
    """Until some backend of this database waits on a row lock."""
    deadline = time.monotonic() + timeout
    with db.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
            conn.commit()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("the marking never waited on the claim's lock")


@pytest.mark.concurrency
def test_a_pair_released_while_the_marking_runs_is_never_marked(
    client: Any, db: Any, recorded_tasks: list[Any]
) -> None:
    pid, _ = labelled_project(client, recorded_tasks)
    ingest(client, recorded_tasks, pid, COPY)
    run_tasks(recorded_tasks, skip=("neighbors.mark_redundant",))
    copy = pair_of(client, pid, "copy")
    assert copy["status"] == "queued"  # redundant by the rule, not marked yet

    # A claim takes the pair (slot locked, pair released) and has not committed when the marking runs:
    # the marking read the pair as queued, then waits on the slot, then finds the pair released.
    outcome: dict[str, Any] = {}
    with db.session() as session:
        project = session.get_one(Project, uuid.UUID(pid))
        claimed = queue_service.claim(session, project, "racer", utcnow())
        assert not isinstance(claimed, str)
        assert str(claimed.assignment.pair_id) == copy["id"]
        marker = threading.Thread(target=lambda: outcome.update(mark_redundant(pid)))
        marker.start()
        _wait_for_a_lock_wait(db)
        assert marker.is_alive()
    marker.join(30)
    assert not marker.is_alive()
    assert outcome == {"marked": 0, "restored": 0}
    after = pair_of(client, pid, "copy")
    assert (after["status"], after["redundant_with"]) == ("released", None)
    assert slots_done(db, copy["id"]) == [False]  # leased, open for its label


@pytest.mark.concurrency
def test_a_claim_during_the_marking_skips_the_pair(client: Any, db: Any, recorded_tasks: list[Any]) -> None:
    pid, labelled = labelled_project(client, recorded_tasks)
    ingest(client, recorded_tasks, pid, COPY)
    run_tasks(recorded_tasks, skip=("neighbors.mark_redundant",))
    copy = pair_of(client, pid, "copy")
    reason = {"threshold": 0.98, "index_version": 2, "response_a": {}, "response_b": {}}
    with db.session() as session:
        pairs_repository.lock_redundancy(session, uuid.UUID(pid))
        assert pairs_repository.mark_redundant(session, {uuid.UUID(copy["id"]): reason}) == [
            uuid.UUID(copy["id"])
        ]
        # Not committed yet: the claim passes over the locked slot rather than waiting or taking it.
        assert claim(client, pid, "racer").status_code == 204
    assert claim(client, pid, "racer").status_code == 204
    with db.session() as session:
        pair = session.get_one(Pair, uuid.UUID(copy["id"]))
        assert (pair.status, pair.released_at) == ("redundant", None)
        assert session.scalar(select(Prompt.status).where(Prompt.external_id == "copy")) == "paired"
    assert labelled["status"] == "done"


def test_the_setting_is_validated_and_changes_ask_for_the_marking(
    client: Any, recorded_tasks: list[Any]
) -> None:
    default = client.post("/v1/projects", json={"name": "default"}).json()
    assert default["skip_redundant_pairs"] is False
    for bad in ("yes", 1, None):
        answer = client.post("/v1/projects", json={"name": "bad", "skip_redundant_pairs": bad})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "body.skip_redundant_pairs"
    answer = client.patch(f"/v1/projects/{default['id']}", json={"skip_redundant_pairs": None})
    assert answer.status_code == 422
    assert "skip_redundant_pairs" in answer.text

    skipping = client.post("/v1/projects", json={"name": "skipping", "skip_redundant_pairs": True}).json()
    recorded_tasks.clear()
    # Neither project has anything to mark yet; a threshold change of a skipping project asks again.
    client.patch(f"/v1/projects/{default['id']}", json={"near_duplicate_threshold": 0.95})
    client.patch(f"/v1/projects/{skipping['id']}", json={"near_duplicate_threshold": 0.95})
    client.patch(f"/v1/projects/{skipping['id']}", json={"name": "renamed"})
    assert recorded_tasks == [("neighbors.mark_redundant", {"project_id": skipping["id"]})]
    assert mark_redundant(skipping["id"]) == {"marked": 0, "restored": 0}

    # The periodic sweep asks for a marking of every active project that skips redundant pairs.
    recorded_tasks.clear()
    assert resolve("neighbors.sweep_redundant")() == 1
    assert recorded_tasks == [("neighbors.mark_redundant", {"project_id": skipping["id"]})]
    assert "neighbors.sweep_redundant" in dict(periodic_tasks())
    assert client.delete(f"/v1/projects/{skipping['id']}").status_code in (200, 204)
    recorded_tasks.clear()
    assert resolve("neighbors.sweep_redundant")() == 0
