"""One outcome everywhere: for any labels (in any screen order) and verdict, the quality aggregates, the pair
list, the prompt view, the review queue and the export say the same thing about a pair."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.labels import outcome
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.quality import service as quality
from app.queue.models import Assignment, AssignmentStatus, Label
from tests.exports.helpers import at, data_bytes, manifest, review, run_export
from tests.factories import make_pairs, make_project

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("recorded_tasks")]

SCREEN = {("a", True): "a", ("b", True): "b", ("a", False): "b", ("b", False): "a"}


def add_label(session: Any, pair: Pair, n: int, side: str, a_first: bool) -> None:
    """A label whose annotator saw the pair in the given screen order and chose `side` (pair terms)."""
    slot = session.query(PairSlot).filter(PairSlot.pair_id == pair.id).first()
    first, second = (
        (pair.response_a_id, pair.response_b_id) if a_first else (pair.response_b_id, pair.response_a_id)
    )
    when = at(1 + n)
    assignment = Assignment(
        project_id=pair.project_id, pair_id=pair.id, slot_id=slot.id, annotator=f"ann{n}",
        shown_first_response_id=first, shown_second_response_id=second, status=AssignmentStatus.LABELED,
        lease_expires_at=when + timedelta(minutes=10), ended_at=when, created_at=when,
    )  # fmt: skip
    session.add(assignment)
    session.flush()
    choice = SCREEN.get((side, a_first), side)  # tie and both_bad read the same on any screen
    session.add(
        Label(
            assignment_id=assignment.id,
            project_id=pair.project_id,
            pair_id=pair.id,
            annotator=f"ann{n}",
            choice=choice,
            shown_first_response_id=first,
            labeled_at=when,
            request_sha256="0" * 64,
            created_at=when,
        )  # fmt: skip
    )
    pair.labels_count += 1


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sides=st.lists(st.sampled_from(outcome.SIDES), min_size=1, max_size=6),
    verdict=st.sampled_from([None, *outcome.SIDES]),
    wanted=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_every_view_and_the_export_agree(
    client: Any, db: Any, sides: list[str], verdict: str | None, wanted: int, seed: int
) -> None:
    screen = random.Random(seed)
    with db.session() as s:
        project = make_project(s, annotations_per_pair=wanted, review_agreement_threshold=0.6)
        pair = make_pairs(s, project, 1)[0]
        for n, side in enumerate(sides):
            add_label(s, pair, n, side, screen.random() < 0.5)
        if verdict is not None:
            review(s, pair, verdict, at(30))
        pid, pair_id = project.id, pair.id
    with db.session() as s:
        quality.aggregate(s, s.get_one(Project, pid))
        stored = s.get_one(Pair, pair_id)
        stored_outcome, stored_agreement = stored.outcome, stored.agreement
    expected = outcome.decide(outcome.count(sides), verdict, wanted)

    # The quality aggregate stored on the pair, and the review queue built from it.
    assert stored_outcome == outcome.stored(expected)
    assert stored_agreement == expected.agreement
    queue = [item["pair_id"] for item in client.get(f"/v1/projects/{pid}/review").json()]
    needs_review = (
        verdict is None and len(sides) >= 2 and (expected.result is None or (expected.agreement or 0.0) < 0.6)
    )
    assert (str(pair_id) in queue) == needs_review
    if needs_review:
        item = client.get(f"/v1/projects/{pid}/review").json()[0]
        assert item["outcome"] == stored_outcome

    # The pair list and the prompt view.
    listed = client.get(f"/v1/projects/{pid}/pairs").json()["items"][0]["outcome"]
    external_id = client.get(f"/v1/projects/{pid}/pairs").json()["items"][0]["prompt_external_id"]
    viewed = client.get(f"/v1/projects/{pid}/prompts/by-external-id/{external_id}").json()["pairs"][0][
        "outcome"
    ]
    assert listed == viewed
    assert (listed["result"], listed["reason"], listed["completed"]) == (
        expected.result,
        expected.reason,
        expected.completed,
    )
    assert (listed["labels"], listed["agreement"], listed["weight"]) == (
        len(sides),
        expected.agreement,
        expected.weight,
    )

    # The export: with partial pairs, and completed ones only (the default).
    for include_partial in (True, False):
        run = run_export(db, pid, snapshot_at=at(60), include_partial=include_partial)
        rows = [json.loads(line) for line in data_bytes(run).decode().splitlines()]
        excluded = {k: v for k, v in manifest(run)["counts"]["excluded"].items() if v}
        if not include_partial and not listed["completed"]:
            assert (rows, excluded) == ([], {"partial": 1})
        elif listed["result"] in ("a", "b"):
            assert len(rows) == 1
            winner_text = "first" if listed["result"] == "a" else "second"
            assert rows[0]["chosen"].startswith(winner_text)
            assert (rows[0]["num_labels"], rows[0]["agreement"], rows[0]["weight"]) == (
                listed["labels"],
                listed["agreement"],
                listed["weight"],
            )
            assert (rows[0]["completed"], rows[0]["reviewed"]) == (listed["completed"], listed["reviewed"])
        else:
            assert (rows, excluded) == ([], {listed["reason"]: 1})
