"""The redundancy writes on both backends: never a released pair, slots closed and reopened with the pair."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.base import utcnow
from app.pairs import repository
from app.pairs.models import Pair, PairSlot
from tests.factories import make_pairs, make_project

WHY = {"threshold": 0.98, "index_version": 1, "response_a": {}, "response_b": {}}


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_mark_and_restore(backend: str, request: pytest.FixtureRequest) -> None:
    database = request.getfixturevalue("db" if backend == "postgres" else "sqlite_app")
    with database.session() as session:
        project = make_project(session, annotations_per_pair=2, skip_redundant_pairs=True)
        released, queued, other = make_pairs(session, project, 3)
        released.released_at = utcnow()
        session.flush()
        repository.lock_redundancy(session, project.id)
        marked = repository.mark_redundant(session, {released.id: WHY, queued.id: WHY})
        assert marked == [queued.id]
        assert repository.mark_redundant(session, {queued.id: WHY}) == []  # already redundant
    with database.session() as session:
        done = dict(session.execute(select(PairSlot.pair_id, PairSlot.done).where(PairSlot.slot == 1)).all())
        assert done == {released.id: False, queued.id: True, other.id: False}
        pairs = {p.id: p for p in session.scalars(select(Pair))}
        assert (pairs[queued.id].status, pairs[queued.id].redundant_with) == ("redundant", WHY)
        assert (pairs[released.id].status, pairs[released.id].redundant_with) == ("queued", None)
        assert repository.count_redundant(session, project.id) == 1
        assert repository.redundant_pair_ids(session, project.id) == [queued.id]
        assert [c.pair_id for c in repository.candidate_pairs(session, project.id)] == [queued.id, other.id]
    with database.session() as session:
        assert repository.restore_redundant(session, [released.id, queued.id, other.id]) == [queued.id]
    with database.session() as session:
        assert not any(session.scalars(select(PairSlot.done)))
        restored = session.get_one(Pair, queued.id)
        assert (restored.status, restored.redundant_with) == ("queued", None)
        assert repository.count_redundant(session, project.id) == 0
