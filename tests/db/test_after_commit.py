"""Sends recorded in a unit of work go out after the outermost COMMIT only, and only if their part of the
transaction survived (SQLAlchemy fires `after_commit` when a SAVEPOINT is released, and `after_rollback`
when one is rolled back)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text

from app.db.after_commit import send_after_commit

pytestmark = pytest.mark.integration


class Abort(Exception):
    """Raised to roll a (sub)transaction back."""


def _fail_inside(session: Any, *ns: int, inner_released: int | None = None) -> None:
    """Record sends inside a savepoint (and, if given, a released savepoint inside it), then roll it back."""
    with session.begin_nested():
        if inner_released is not None:
            with session.begin_nested():
                send_after_commit(session, "maintenance.reconcile", n=inner_released)
        for n in ns:
            send_after_commit(session, "maintenance.reconcile", n=n)
        raise Abort


def _fail_unit_of_work(db: Any) -> None:
    with db.session() as session:
        send_after_commit(session, "maintenance.reconcile", n=1)
        with session.begin_nested():
            send_after_commit(session, "maintenance.reconcile", n=2)
        raise Abort


class TestSendAfterCommit:
    def test_a_send_inside_a_savepoint_waits_for_the_outer_commit(
        self, db: Any, recorded_tasks: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with db.session() as session:
            session.execute(text("SELECT 1"))
            with session.begin_nested():
                send_after_commit(session, "maintenance.reconcile", n=1)
            assert recorded_tasks == []  # the savepoint is released, the transaction is not committed
        assert recorded_tasks == [("maintenance.reconcile", {"n": 1})]

    def test_a_rolled_back_savepoint_drops_its_own_sends_only(
        self, db: Any, recorded_tasks: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with db.session() as session:
            send_after_commit(session, "maintenance.reconcile", n=1)
            with pytest.raises(Abort):
                _fail_inside(session, 2)
            send_after_commit(session, "maintenance.reconcile", n=3)
        assert [kwargs["n"] for _, kwargs in recorded_tasks] == [1, 3]

    def test_a_released_savepoint_inside_a_rolled_back_one_is_dropped_with_it(
        self, db: Any, recorded_tasks: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with db.session() as session:
            send_after_commit(session, "maintenance.reconcile", n=1)
            with pytest.raises(Abort):
                _fail_inside(session, 3, inner_released=2)
            with session.begin_nested(), session.begin_nested():
                send_after_commit(session, "maintenance.reconcile", n=4)
        assert [kwargs["n"] for _, kwargs in recorded_tasks] == [1, 4]

    def test_a_rollback_drops_every_send(
        self, db: Any, recorded_tasks: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with pytest.raises(Abort):
            _fail_unit_of_work(db)
        assert recorded_tasks == []
        with db.session() as session:  # the next unit of work starts clean
            send_after_commit(session, "maintenance.reconcile", n=3)
        assert [kwargs["n"] for _, kwargs in recorded_tasks] == [3]

    def test_a_send_before_any_statement_goes_out_at_commit(
        self, db: Any, recorded_tasks: list[tuple[str, dict[str, Any]]]
    ) -> None:
        with db.session() as session:
            send_after_commit(session, "maintenance.reconcile", n=1)
        assert [kwargs["n"] for _, kwargs in recorded_tasks] == [1]


def test_ingest_sends_embedding_only_once_its_prompts_are_committed(
    client: Any, db: Any, monkeypatch: pytest.MonkeyPatch, override_settings: Any
) -> None:
    """A worker that takes the message at once must find the prompts (ingest runs inside a savepoint)."""
    from app import background
    from app.prompts.models import Prompt

    override_settings(embed_chunk_prompts=2)
    seen: list[tuple[int, int]] = []

    def visible_from_another_connection(name: str, kwargs: dict[str, Any]) -> None:
        assert name == "embeddings.embed_prompts"
        with db.session() as other:
            found = other.scalars(select(Prompt.id).where(Prompt.id.in_(kwargs["prompt_ids"]))).all()
        seen.append((len(found), len(kwargs["prompt_ids"])))

    monkeypatch.setattr(background, "dispatch", visible_from_another_connection)
    pid = client.post("/v1/projects", json={"name": "after-commit"}).json()["id"]
    items = [
        {"external_id": f"p{n}", "prompt": f"prompt {n}", "responses": [{"text": f"x{n}"}, {"text": f"y{n}"}]}
        for n in range(5)
    ]
    response = client.post(f"/v1/projects/{pid}/prompts", json={"items": items})
    assert response.status_code == 202, response.text
    assert seen == [(2, 2), (2, 2), (1, 1)]
