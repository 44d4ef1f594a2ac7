"""Claim and label on Postgres, with pairs made by factories (nothing embedded)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app.api.clock import get_now
from app.auth.context import Caller
from app.auth.models import Role
from app.db.base import utcnow
from app.errors import NotFound
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.queue import repository, service
from app.queue.models import Assignment, Label
from tests.factories import grant_annotator, make_pairs, make_project


def claim(client: Any, project_id: Any, annotator: str = "ann") -> Any:
    grant_annotator(annotator, project_id)  # an admin claims only for a real annotator
    return client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": annotator})


def label(client: Any, assignment_id: str, choice: str) -> Any:
    return client.post(f"/v1/assignments/{assignment_id}/label", json={"choice": choice})


class TestClaim:
    def test_hands_out_the_highest_priority_first(self, client: Any, session: Any) -> None:
        project = make_project(session)
        pairs = make_pairs(session, project, 3, priorities=[0.2, 0.9, 0.5])
        session.commit()
        first = claim(client, project.id).json()
        texts = {first["response_a"]["text"], first["response_b"]["text"]}
        assert texts == {"first answer to 1", "second answer to 1"}
        assert {first["response_a"]["id"], first["response_b"]["id"]} == {
            str(pairs[1].response_a_id),
            str(pairs[1].response_b_id),
        }
        assert first["prompt"] == "Prompt number 1"
        assert first["instructions"] == "Pick the better response."
        assert "model" not in first["response_a"]

    def test_empty_queue_says_why(self, client: Any, session: Any) -> None:
        project = make_project(session)
        session.commit()
        response = claim(client, project.id)
        assert response.status_code == 204
        assert response.headers["Real-Queue-Reason"] == "empty"
        assert int(response.headers["Retry-After"]) > 0

    def test_budget_caps_released_pairs(self, client: Any, session: Any) -> None:
        project = make_project(session, budget=3)
        make_pairs(session, project, 5)
        session.commit()
        assignments = [claim(client, project.id, f"ann{n}").json()["assignment_id"] for n in range(3)]
        spent = claim(client, project.id, "late")
        assert spent.status_code == 204
        assert spent.headers["Real-Queue-Reason"] == "budget_spent"
        for assignment_id in assignments:
            assert label(client, assignment_id, "a").status_code == 201
        stats = client.get(f"/v1/projects/{project.id}/stats").json()
        assert (stats["labels"], stats["budget"], stats["budget_remaining"]) == (3, 3, 0)

    def test_budget_counts_labels_across_overlap(self, client: Any, session: Any) -> None:
        project = make_project(session, budget=5, annotations_per_pair=2)
        make_pairs(session, project, 4)
        session.commit()
        handed = []
        for n in range(6):
            response = claim(client, project.id, f"ann{n}")
            if response.status_code == 200:
                handed.append(response.json())
        # floor(5 / 2) = 2 pairs, each with 2 slots: 4 claims, so at most 4 labels <= budget 5.
        assert len(handed) == 4
        for assignment in handed:
            assert label(client, assignment["assignment_id"], "tie").status_code == 201
        assert client.get(f"/v1/projects/{project.id}/stats").json()["labels"] == 4
        done = session.scalar(select(func.count()).select_from(Pair).where(Pair.status == "done"))
        assert done == 2

    def test_one_annotator_never_gets_the_same_pair_twice(self, client: Any, session: Any) -> None:
        project = make_project(session, annotations_per_pair=3)
        make_pairs(session, project, 1)
        session.commit()
        first = claim(client, project.id, "same")
        assert first.status_code == 200
        assert claim(client, project.id, "same").status_code == 204
        assert claim(client, project.id, "other").status_code == 200

    def test_waiting_for_embeddings(self, client: Any, session: Any, recorded_tasks: list[Any]) -> None:
        project = client.post("/v1/projects", json={"name": "waiting"}).json()
        client.post(
            f"/v1/projects/{project['id']}/prompts",
            json={"items": [{"external_id": "p", "prompt": "q", "responses": ["a", "b"]}]},
        )
        response = claim(client, project["id"])
        assert response.headers["Real-Queue-Reason"] == "waiting_for_embeddings"


class TestLabel:
    def test_label_stores_winner_and_screen_order(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        assignment = claim(client, project.id).json()
        stored = label(client, assignment["assignment_id"], "b")
        assert stored.status_code == 201
        body = stored.json()
        assert body["winner_response_id"] == assignment["response_b"]["id"]
        assert body["shown_first_response_id"] == assignment["response_a"]["id"]

    def test_retry_is_idempotent_and_other_choice_conflicts(self, client: Any, session: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        assignment_id = claim(client, project.id).json()["assignment_id"]
        first = label(client, assignment_id, "tie")
        again = label(client, assignment_id, "tie")
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json() == again.json()
        other = label(client, assignment_id, "a")
        assert other.status_code == 409
        assert other.json()["code"] == "already_labeled"
        assert session.scalar(select(func.count()).select_from(Label)) == 1

    def test_expired_lease_is_fenced_and_the_pair_claimable_again(self, client: Any, session: Any) -> None:
        project = make_project(session, lease_ttl_seconds=60)
        make_pairs(session, project, 1)
        session.commit()
        stale = claim(client, project.id, "slow").json()["assignment_id"]
        later = utcnow() + timedelta(seconds=61)
        client.app.dependency_overrides[get_now] = lambda: later
        fresh = claim(client, project.id, "fast")
        assert fresh.status_code == 200
        refused = label(client, stale, "a")
        assert refused.status_code == 409
        assert refused.json()["code"] == "lease_expired"
        assert label(client, fresh.json()["assignment_id"], "b").status_code == 201
        assert session.scalar(select(func.count()).select_from(Label)) == 1

    def test_unknown_assignment_and_bad_choice(self, client: Any, session: Any) -> None:
        assert label(client, "00000000-0000-4000-8000-000000000000", "a").status_code == 404
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        assignment_id = claim(client, project.id).json()["assignment_id"]
        bad = label(client, assignment_id, "c")
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "body.choice"

    def test_another_annotators_assignment_is_not_found(self, client: Any, session: Any, db: Any) -> None:
        project = make_project(session)
        make_pairs(session, project, 1)
        session.commit()
        assignment_id = claim(client, project.id, "alice").json()["assignment_id"]
        bob = Caller(name="bob", role=Role.ANNOTATOR, projects=frozenset({project.id}))
        with db.session() as s, pytest.raises(NotFound):
            service.get_assignment(s, bob, assignment_id)


class TestReleasedFirst:
    """Slots of released pairs (budget already spent) are handed out before new pairs are opened."""

    def test_a_released_pairs_sibling_slot_beats_a_higher_priority_new_pair(
        self, client: Any, session: Any
    ) -> None:
        project = make_project(session, annotations_per_pair=2)
        opened, newer = make_pairs(session, project, 2, priorities=[0.9, 0.5])
        session.commit()
        assert claim(client, project.id, "ann0").json()["assignment_id"]
        query = select(PairSlot.slot, PairSlot.released).where(PairSlot.pair_id == opened.id)
        flags = {slot: released for slot, released in session.execute(query)}
        assert flags == {0: True, 1: True}  # the claimed slot and its sibling
        # Active learning re-ranks the other pair above it: a released pair still comes first.
        session.execute(update(PairSlot).where(PairSlot.pair_id == newer.id).values(priority=0.99))
        session.commit()
        second = claim(client, project.id, "ann1").json()
        assignment = session.get(Assignment, uuid.UUID(second["assignment_id"]))
        assert assignment is not None
        assert assignment.pair_id == opened.id

    def test_reconcile_mends_a_sibling_flag_a_crashed_claim_left(self, client: Any, session: Any) -> None:
        project = make_project(session, annotations_per_pair=2)
        (pair,) = make_pairs(session, project, 1)
        session.commit()
        assert claim(client, project.id, "ann0").status_code == 200
        session.execute(
            update(PairSlot).where(PairSlot.pair_id == pair.id, PairSlot.slot == 1).values(released=False)
        )
        session.commit()
        assert repository.reconcile_released_flags(session) == 1
        session.commit()
        assert repository.reconcile_released_flags(session) == 0
        assert all(session.scalars(select(PairSlot.released).where(PairSlot.pair_id == pair.id)))

    @pytest.mark.parametrize("overlap", [1, 2])
    def test_a_claim_the_budget_refuses_leaves_no_trace(
        self, client: Any, session: Any, db: Any, overlap: int
    ) -> None:
        project = make_project(session, budget=overlap, annotations_per_pair=overlap)
        make_pairs(session, project, 2, priorities=[0.9, 0.5])
        session.commit()
        with db.session() as stale:
            loaded = stale.get_one(Project, project.id)  # still says 0 of 1 pairs released
            assert claim(client, project.id, "first").status_code == 200  # spends the whole budget
            # The same annotator: the first pair is theirs already, so the claim opens the second pair,
            # which the budget refuses.
            assert service.claim(stale, loaded, "first", utcnow()) == service.QueueReason.BUDGET_SPENT
        mine = select(func.count()).select_from(Assignment).where(Assignment.annotator == "first")
        assert session.scalar(mine) == 1
        released = select(func.count()).select_from(Pair).where(Pair.released_at.is_not(None))
        assert session.scalar(released) == 1
        leased = select(func.count()).select_from(PairSlot).where(PairSlot.lease_assignment_id.is_not(None))
        assert session.scalar(leased) == 1
        # Only the first pair's slots are flagged released: a flag on the refused pair would let a later claim
        # hand it out as already released, outside the budget.
        assert session.scalar(select(func.count()).select_from(PairSlot).where(PairSlot.released)) == overlap
        if overlap > 1:
            second = claim(client, project.id, "second")
            assert second.status_code == 200  # the first pair's sibling slot: no budget needed
            assert claim(client, project.id, "third").headers["Real-Queue-Reason"] == "budget_spent"


class TestSqliteClaimPlan:
    def test_the_claim_walks_the_claimable_index_without_sorting(self, sqlite_app: Any) -> None:
        # SQLite uses a partial index only when the query spells its predicate (`NOT done`); `done = 0`
        # made it scan and sort every slot on each claim.
        with sqlite_app.session() as session:
            project = make_project(session)
            make_pairs(session, project, 50)
            project_id = project.id
        statement = repository._CANDIDATE_SQLITE[False].params(
            b_project=project_id, b_annotator="ann", b_now=utcnow()
        )
        with sqlite_app.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
            plan = " | ".join(row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX ix_pair_slot_claimable" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
