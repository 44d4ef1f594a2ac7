"""Aggregates belong to the quality.aggregate task: the GET reads, labels ask (debounced), beat sweeps."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text

from app import background
from app.db.session import get_database
from app.quality import debounce
from app.quality.models import QualitySnapshot
from app.quality.service import schedule_aggregate
from app.quality.tasks import aggregate_project, aggregate_stale
from tests.factories import make_pairs, make_project
from tests.quality.test_quality_service import vote
from tests.services import redis_url

AGGREGATE = "quality.aggregate"


def sends(recorded: list[tuple[str, dict[str, Any]]], project_id: Any) -> list[dict[str, Any]]:
    return [kw for name, kw in recorded if name == AGGREGATE and kw["project_id"] == str(project_id)]


def run_recorded(recorded: list[tuple[str, dict[str, Any]]]) -> None:
    """Run the recorded aggregation tasks in-process, as the embedded runner would, and forget them."""
    for name, kwargs in [r for r in recorded if r[0] == AGGREGATE]:
        background.resolve(name)(**kwargs)
    recorded.clear()


@pytest.fixture
def labelled(client: Any, session: Any, recorded_tasks: list[Any]) -> Any:
    """A project with overlap 2 and four labels (two pairs, both annotators agree on one, not the other)."""
    project = make_project(session, annotations_per_pair=2, gold_rate=0.0)
    make_pairs(session, project, 4)
    session.commit()
    for annotator, choice in [("ann1", "a"), ("ann2", "a"), ("ann1", "a"), ("ann2", "b")]:
        vote(client, project.id, annotator, choice)
    return project


def table_rows(db: Any, project_id: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of every row the aggregation writes, for the project."""
    with db.engine.connect() as conn:
        return {
            table: [
                tuple(r)
                for r in conn.execute(
                    text(f"SELECT * FROM {table} WHERE project_id = :p ORDER BY 1"), {"p": project_id}
                )
            ]
            for table in ("pair", "annotator_quality", "quality_snapshot", "label")
        }


class TestReadOnlyGet:
    def test_get_quality_performs_no_writes(
        self, client: Any, db: Any, labelled: Any, recorded_tasks: list[Any]
    ) -> None:
        assert aggregate_project(str(labelled.id)) is True
        before = table_rows(db, labelled.id)
        recorded_tasks.clear()
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement.lstrip().split(None, 1)[0].upper())

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            for _ in range(3):
                read = client.get(f"/v1/projects/{labelled.id}/quality")
                assert read.status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert statements
        assert set(statements) <= {"SELECT", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"}
        assert table_rows(db, labelled.id) == before
        assert read.json()["labels"] == 4
        assert recorded_tasks == []


class TestStaleness:
    def test_label_and_undo_make_the_snapshot_stale_until_the_task_runs(
        self, client: Any, labelled: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(quality_aggregate_debounce_seconds=0)
        url = f"/v1/projects/{labelled.id}/quality"
        run_recorded(recorded_tasks)
        first = client.get(url).json()
        assert (first["stale"], first["labels"], first["pairs_with_overlap"]) == (False, 4, 2)
        label = vote(client, labelled.id, "ann3", "b")
        assert client.get(url).json()["stale"] is True
        assert len(sends(recorded_tasks, labelled.id)) == 1
        run_recorded(recorded_tasks)
        second = client.get(url).json()
        assert (second["stale"], second["labels"]) == (False, 5)
        assert datetime.fromisoformat(second["computed_at"]) > datetime.fromisoformat(first["computed_at"])
        undone = client.delete(f"/v1/assignments/{label['assignment_id']}/label")
        assert undone.status_code == 204
        # An undo stores nothing newer, but the label count moved.
        assert client.get(url).json()["stale"] is True
        assert len(sends(recorded_tasks, labelled.id)) == 1
        run_recorded(recorded_tasks)
        assert client.get(url).json()["labels"] == 4

    def test_the_task_skips_a_current_snapshot_unless_forced(self, labelled: Any, db: Any) -> None:
        assert aggregate_project(str(labelled.id)) is True
        with db.session() as s:
            computed = s.get(QualitySnapshot, labelled.id).computed_at
        assert aggregate_project(str(labelled.id)) is False
        assert aggregate_project(str(labelled.id), force=True) is True
        with db.session() as s:
            assert s.get(QualitySnapshot, labelled.id).computed_at > computed
        assert aggregate_project(str(uuid.uuid4())) is False

    def test_refresh_enqueues_a_forced_aggregation(
        self, client: Any, labelled: Any, recorded_tasks: list[Any]
    ) -> None:
        recorded_tasks.clear()
        for _ in range(2):
            refreshed = client.post(f"/v1/projects/{labelled.id}/quality/refresh")
            assert refreshed.status_code == 202
            assert refreshed.json()["project_id"] == str(labelled.id)
        assert sends(recorded_tasks, labelled.id) == [{"project_id": str(labelled.id), "force": True}] * 2
        run_recorded(recorded_tasks)
        once = client.get(f"/v1/projects/{labelled.id}/quality").json()
        assert (
            client.post(f"/v1/projects/{labelled.id}/quality/refresh").json()["computed_at"]
            == (once["computed_at"])
        )
        run_recorded(recorded_tasks)
        twice = client.get(f"/v1/projects/{labelled.id}/quality").json()
        assert {k: v for k, v in twice.items() if k != "computed_at"} == {
            k: v for k, v in once.items() if k != "computed_at"
        }
        assert client.post(f"/v1/projects/{uuid.uuid4()}/quality/refresh").status_code == 404


class TestDebounce:
    def test_labels_in_one_window_send_once(
        self, client: Any, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(quality_aggregate_debounce_seconds=0.5)
        project = make_project(session, gold_rate=0.0)
        other = make_project(session, gold_rate=0.0)
        make_pairs(session, project, 4)
        make_pairs(session, other, 1)
        session.commit()
        started = time.monotonic()
        for choice in ("a", "b", "tie"):
            vote(client, project.id, "ann", choice)
        vote(client, other.id, "ann", "a")
        if time.monotonic() - started < 0.5:  # on a machine this slow the window may have passed
            assert len(sends(recorded_tasks, project.id)) == 1
        assert len(sends(recorded_tasks, other.id)) == 1
        time.sleep(0.55)
        vote(client, project.id, "ann", "a")
        assert len(sends(recorded_tasks, project.id)) >= 2

    def test_a_rolled_back_label_sends_nothing(self, db: Any, recorded_tasks: list[Any]) -> None:
        def failing_label() -> None:
            with get_database().session() as s:
                schedule_aggregate(s, uuid.uuid4())
                raise RuntimeError("the label failed")

        with pytest.raises(RuntimeError):
            failing_label()
        assert recorded_tasks == []

    @pytest.fixture
    def shared_redis(self, override_settings: Any) -> Iterator[None]:
        override_settings(rate_limit_redis_url=redis_url(), quality_aggregate_debounce_seconds=0.3)
        yield
        debounce.reset()

    def test_redis_window_is_shared_between_processes(
        self, db: Any, shared_redis: None, recorded_tasks: list[Any]
    ) -> None:
        project_id, other_id = uuid.uuid4(), uuid.uuid4()

        def label_commits(pid: uuid.UUID) -> None:
            with db.session() as s:
                schedule_aggregate(s, pid)

        label_commits(project_id)
        label_commits(project_id)
        debounce.reset()  # another API process: nothing in its memory, the window is in Redis
        label_commits(project_id)
        label_commits(other_id)
        assert (len(sends(recorded_tasks, project_id)), len(sends(recorded_tasks, other_id))) == (1, 1)
        time.sleep(0.35)
        debounce.reset()
        label_commits(project_id)
        assert len(sends(recorded_tasks, project_id)) == 2

    def test_redis_unavailable_fails_open(self) -> None:
        key = f"test:{uuid.uuid4()}"
        assert debounce.first_in_window(key, 60, "redis://127.0.0.1:1/0") is True
        debounce.reset()


class TestPeriodicSweep:
    def test_only_stale_projects_are_sent(
        self, client: Any, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(quality_aggregate_debounce_seconds=0)
        fresh, stale, unlabelled, emptied = (make_project(session, gold_rate=0.0) for _ in range(4))
        for project in (fresh, stale, unlabelled, emptied):
            make_pairs(session, project, 2)
        session.commit()
        vote(client, fresh.id, "ann", "a")
        vote(client, stale.id, "ann", "a")
        undo_me = vote(client, emptied.id, "ann", "a")
        run_recorded(recorded_tasks)
        vote(client, stale.id, "ann", "b")
        assert client.delete(f"/v1/assignments/{undo_me['assignment_id']}/label").status_code == 204
        recorded_tasks.clear()
        assert aggregate_stale() == 2
        assert sorted(kw["project_id"] for _, kw in recorded_tasks) == sorted(
            [str(stale.id), str(emptied.id)]
        )
        run_recorded(recorded_tasks)
        assert aggregate_stale() == 0
        with get_database().session() as s:
            assert (
                s.scalar(select(QualitySnapshot.labels).where(QualitySnapshot.project_id == emptied.id)) == 0
            )

    def test_the_sweep_is_a_periodic_task(self) -> None:
        assert "quality.aggregate_stale" in dict(background.periodic_tasks())
        assert background.resolve("quality.aggregate_stale") is aggregate_stale
        assert background.resolve(AGGREGATE) is aggregate_project
