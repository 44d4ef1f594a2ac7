"""Scheduled exports: the API, cron maths, and the runner under a controlled clock (real Postgres commits)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from app import background
from app.api.clock import get_now
from app.audit.models import AuditEvent
from app.exports import tasks as exports
from app.exports.models import ExportRun, ExportStatus
from app.schedules import cron, repository
from app.schedules import service as schedules
from app.schedules import tasks as schedule_tasks
from tests.exports.helpers import T0, at, label
from tests.factories import make_pairs, make_project

HOUR = timedelta(hours=1)


def seed(db: Any, pairs: int = 4, labelled: int = 2) -> tuple[str, list[Any]]:
    """A project with `pairs` pairs, the first `labelled` of them labelled at T0 + 10, 20, ... minutes."""
    with db.session() as s:
        project = make_project(s)
        made = make_pairs(s, project, pairs)
        for n, pair in enumerate(made[:labelled]):
            label(s, pair, "ann1", "a", at(10 * (n + 1)))
        return str(project.id), made


def put(client: Any, pid: str, body: dict[str, Any], now: datetime) -> Any:
    client.app.dependency_overrides[get_now] = lambda: now
    try:
        return client.put(f"/v1/projects/{pid}/export-schedule", json=body)
    finally:
        client.app.dependency_overrides.pop(get_now)


def schedule_of(client: Any, pid: str) -> dict[str, Any]:
    got = client.get(f"/v1/projects/{pid}/export-schedule")
    assert got.status_code == 200, got.text
    return dict(got.json())


def export_row(db: Any, export_id: str) -> ExportRun:
    with db.session() as s:
        return s.get_one(ExportRun, uuid.UUID(export_id))


def count_exports(db: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(ExportRun)) or 0)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(autouse=True)
def _record(recorded_tasks: list[Any]) -> None:
    """Exports are queued, not run, unless a test runs them."""


class TestRunnerInterval:
    def test_due_and_not_due(self, client: Any, db: Any, recorded_tasks: list[Any]) -> None:
        pid, _ = seed(db)
        created = put(client, pid, {"every_seconds": 3600, "format": "parquet"}, T0)
        assert created.status_code == 200, created.text
        assert parse(created.json()["next_run_at"]) == T0 + HOUR
        assert created.json()["last_run_at"] is None

        assert schedule_tasks.run_schedules(now=T0 + HOUR - timedelta(seconds=1)) == []
        assert count_exports(db) == 0

        late = T0 + HOUR + timedelta(seconds=40)
        made = schedule_tasks.run_schedules(now=late)
        assert len(made) == 1
        run = export_row(db, made[0])
        # The export is of the slot, however late the runner came.
        assert (run.snapshot_at, run.format, run.status) == (T0 + HOUR, "parquet", ExportStatus.QUEUED)
        assert ("exports.run_export", {"export_id": made[0]}) in recorded_tasks
        view = schedule_of(client, pid)
        assert parse(view["next_run_at"]) == T0 + 2 * HOUR
        assert parse(view["last_run_at"]) == late
        assert view["last_export_id"] == made[0]
        assert view["last_error"] is None

        # Same instant again: nothing is due any more.
        assert schedule_tasks.run_schedules(now=late) == []
        assert count_exports(db) == 1
        with db.session() as s:
            actors = set(s.scalars(select(AuditEvent.actor).where(AuditEvent.action == "export.created")))
        assert actors == {"scheduler"}

    def test_missed_slots_make_one_catch_up_export(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600}, T0).status_code == 200
        back = T0 + timedelta(days=1, minutes=30)  # 24 slots missed
        made = schedule_tasks.run_schedules(now=back)
        assert len(made) == 1
        assert export_row(db, made[0]).snapshot_at == T0 + timedelta(days=1)
        assert parse(schedule_of(client, pid)["next_run_at"]) == T0 + timedelta(days=1, hours=1)
        assert schedule_tasks.run_schedules(now=back + timedelta(minutes=29)) == []
        assert count_exports(db) == 1

    def test_archived_project_is_skipped(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 60}, T0).status_code == 200
        assert client.delete(f"/v1/projects/{pid}").status_code == 204
        assert schedule_tasks.run_schedules(now=T0 + HOUR) == []
        assert count_exports(db) == 0
        with db.session() as s:
            assert repository.due(s, T0 + HOUR) == []


class TestRunnerCron:
    def test_daily_cron(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        now = T0 + timedelta(hours=10)
        created = put(client, pid, {"cron": "0  3 * * *", "incremental": True}, now)
        assert created.status_code == 200, created.text
        assert created.json()["cron"] == "0 3 * * *"  # normalised
        slot = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)
        assert parse(created.json()["next_run_at"]) == slot

        assert schedule_tasks.run_schedules(now=slot - timedelta(seconds=1)) == []
        made = schedule_tasks.run_schedules(now=slot + timedelta(seconds=50))
        assert len(made) == 1
        assert export_row(db, made[0]).snapshot_at == slot
        assert parse(schedule_of(client, pid)["next_run_at"]) == slot + timedelta(days=1)

    def test_cron_catch_up_takes_the_newest_missed_slot(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"cron": "0 3 * * *"}, T0).status_code == 200
        back = datetime(2026, 1, 4, 12, 0, tzinfo=UTC)  # the 1st, 2nd, 3rd and 4th at 03:00 missed
        made = schedule_tasks.run_schedules(now=back)
        assert len(made) == 1
        assert export_row(db, made[0]).snapshot_at == datetime(2026, 1, 4, 3, 0, tzinfo=UTC)
        assert parse(schedule_of(client, pid)["next_run_at"]) == datetime(2026, 1, 5, 3, 0, tzinfo=UTC)


class TestConcurrency:
    def test_two_runners_make_one_export_per_slot(
        self, client: Any, db: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600}, T0).status_code == 200
        barrier = threading.Barrier(2, timeout=10)
        read_due = repository.due

        def due_then_wait(session: Any, now: datetime, limit: int = 500) -> Any:
            found = read_due(session, now, limit)
            barrier.wait()  # both runners have seen the slot due before either takes it
            return found

        monkeypatch.setattr(repository, "due", due_then_wait)
        for slot in (T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR):
            results: list[list[str]] = []
            errors: list[BaseException] = []

            def runner(
                now: datetime = slot, results: list[list[str]] = results, errors: list[BaseException] = errors
            ) -> None:
                try:
                    results.append(schedule_tasks.run_schedules(now=now))
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=runner) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(20)
            assert not errors
            assert sorted(len(r) for r in results) == [0, 1]
            # Let the next slot's export be created (the previous one would otherwise be "still queued").
            with db.session() as s:
                s.execute(update(ExportRun).values(status=ExportStatus.SUCCEEDED))
        assert count_exports(db) == 3

    def test_the_second_session_waits_for_the_first_then_takes_nothing(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600}, T0).status_code == 200
        with db.session() as s:
            (project_id, revision, due_at) = repository.due(s, T0 + HOUR)[0]
        second: list[Any] = []

        def other_runner() -> None:
            with db.session() as s:
                second.append(
                    schedules.run_due(s, project_id, revision=revision, due_at=due_at, now=T0 + HOUR)
                )

        with db.session() as first_session:
            first = schedules.run_due(
                first_session, project_id, revision=revision, due_at=due_at, now=T0 + HOUR
            )
            assert first is not None
            thread = threading.Thread(target=other_runner)
            thread.start()
            thread.join(0.5)
            # It read the slot as still due (nothing committed yet) and now waits on the row lock.
            assert thread.is_alive()
        thread.join(10)
        assert second == [None]
        assert count_exports(db) == 1


class TestIncremental:
    def test_since_chains_the_succeeded_scheduled_exports(self, client: Any, db: Any) -> None:
        pid, pairs = seed(db, pairs=4, labelled=2)  # labelled at T0+10 and T0+20 minutes
        assert put(client, pid, {"every_seconds": 3600, "incremental": True}, T0).status_code == 200

        first = schedule_tasks.run_schedules(now=T0 + HOUR)[0]
        assert export_row(db, first).since_export_id is None
        exports.run_export(first)
        assert export_row(db, first).rows == 2

        with db.session() as s:
            label(s, s.merge(pairs[2]), "ann1", "b", at(70))
        second = schedule_tasks.run_schedules(now=T0 + 2 * HOUR)[0]
        assert str(export_row(db, second).since_export_id) == first
        exports.run_export(second)
        assert export_row(db, second).rows == 1

        # A failed scheduled export leaves the chain where it was.
        with db.session() as s:
            label(s, s.merge(pairs[3]), "ann1", "a", at(130))
        third = schedule_tasks.run_schedules(now=T0 + 3 * HOUR)[0]
        assert str(export_row(db, third).since_export_id) == second
        with db.session() as s:
            s.execute(
                update(ExportRun)
                .where(ExportRun.id == uuid.UUID(third))
                .values(status=ExportStatus.FAILED, error="disk full")
            )
        fourth = schedule_tasks.run_schedules(now=T0 + 4 * HOUR)[0]
        assert str(export_row(db, fourth).since_export_id) == second

        # While it is still queued, the next slot is skipped, not piled up.
        assert schedule_tasks.run_schedules(now=T0 + 5 * HOUR) == []
        view = schedule_of(client, pid)
        assert "skipped" in view["last_error"]
        assert view["last_export_id"] == fourth
        assert parse(view["next_run_at"]) == T0 + 6 * HOUR

        exports.run_export(fourth)
        assert export_row(db, fourth).rows == 1  # pairs[3] only

        # Nothing changed since the fourth: the slot records why it made no export, not a 0-row export.
        assert schedule_tasks.run_schedules(now=T0 + 6 * HOUR) == []
        view = schedule_of(client, pid)
        assert view["last_error"] is None
        assert f"nothing changed since export {fourth}" in view["last_skip_reason"]
        assert parse(view["last_run_at"]) == T0 + 6 * HOUR
        assert view["last_export_id"] == fourth
        assert count_exports(db) == 4

        with db.session() as s:
            label(s, s.merge(pairs[0]), "ann2", "a", at(400))  # a second label: the row changes
        fifth = schedule_tasks.run_schedules(now=T0 + 7 * HOUR)[0]
        assert str(export_row(db, fifth).since_export_id) == fourth
        view = schedule_of(client, pid)
        assert (view["last_error"], view["last_skip_reason"]) == (None, None)
        exports.run_export(fifth)
        assert export_row(db, fifth).rows == 1
        assert export_row(db, fifth).manifest["replaced"] == [str(pairs[0].id)]

    def test_a_changed_request_starts_a_new_chain(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600, "incremental": True}, T0).status_code == 200
        first = schedule_tasks.run_schedules(now=T0 + HOUR)[0]
        exports.run_export(first)
        body = {"every_seconds": 3600, "incremental": True, "filters": {"min_agreement": 0.5}}
        assert put(client, pid, body, T0 + HOUR).status_code == 200
        second = schedule_tasks.run_schedules(now=T0 + 2 * HOUR)[0]
        assert export_row(db, second).since_export_id is None  # rows chosen otherwise: a full export
        assert schedule_of(client, pid)["last_error"] is None

    def test_an_export_made_before_incremental_state_starts_a_new_chain(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600, "incremental": True}, T0).status_code == 200
        first = schedule_tasks.run_schedules(now=T0 + HOUR)[0]
        exports.run_export(first)
        with db.session() as s:  # as an export of schema_version 1 was stored
            run = s.get_one(ExportRun, uuid.UUID(first))
            run.manifest = {k: v for k, v in (run.manifest or {}).items() if k not in ("state", "inputs")}
        second = schedule_tasks.run_schedules(now=T0 + 2 * HOUR)[0]
        assert export_row(db, second).since_export_id is None
        assert schedule_of(client, pid)["last_error"] is None

    def test_not_incremental_exports_everything(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600}, T0).status_code == 200
        first = schedule_tasks.run_schedules(now=T0 + HOUR)[0]
        exports.run_export(first)
        second = schedule_tasks.run_schedules(now=T0 + 2 * HOUR)[0]
        assert export_row(db, second).since_export_id is None


class TestScheduledExportRuns:
    def test_the_queued_export_runs_and_is_the_latest(
        self, client: Any, db: Any, recorded_tasks: list[Any]
    ) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 600, "compression": "gzip"}, T0).status_code == 200
        made = schedule_tasks.run_schedules(now=T0 + timedelta(minutes=10))
        sent = [kwargs for name, kwargs in recorded_tasks if name == "exports.run_export"]
        assert sent == [{"export_id": made[0]}]
        background.resolve("exports.run_export")(**sent[0])  # what the worker runs under that name
        latest = client.get(f"/v1/projects/{pid}/exports/latest")
        assert latest.status_code == 200, latest.text
        assert latest.json()["id"] == made[0]
        assert latest.json()["status"] == "succeeded"
        assert latest.json()["rows"] == 1  # the label at T0+20 min came after the slot (T0+10 min)
        assert latest.json()["file_name"] == "data.jsonl.gz"

    def test_tasks_and_periodic_schedule_are_registered(self) -> None:
        periodic = dict(background.periodic_tasks())
        assert periodic["exports.run_schedules"] == 60.0
        assert "webhooks.sweep" in periodic
        assert background.resolve("exports.run_schedules") is schedule_tasks.run_schedules
        from workers.celery_app import celery_app
        from workers.tasks import registered

        assert {"exports.run_schedules", "webhooks.sweep", "webhooks.deliver"} <= set(registered)
        assert celery_app.conf.beat_schedule["exports.run_schedules"]["task"] == "exports.run_schedules"


class TestScheduleApi:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"cron": "61 * * * *"}, "body.cron"),
            ({"cron": "0 3 * *"}, "body.cron"),
            ({"cron": "0 3 * * 7"}, "body.cron"),
            ({"cron": "0 0 31 2 *"}, "body.cron"),
            ({"cron": "not a cron at all"}, "body.cron"),
            ({"every_seconds": 59}, "body.every_seconds"),
            ({"every_seconds": 3600.5}, "body.every_seconds"),
            ({"every_seconds": 3600, "cron": "0 3 * * *"}, "body.cron"),
            ({}, "body.cron"),
            ({"every_seconds": 3600, "format": "csv"}, "body.format"),
            ({"every_seconds": 3600, "since": str(uuid.uuid4())}, "body.since"),
            ({"every_seconds": 3600, "filters": {"min_agreement": 2}}, "body.filters.min_agreement"),
            ({"every_seconds": 3600, "incremental": "yes"}, "body.incremental"),
        ],
    )
    def test_invalid_bodies_name_the_field(self, client: Any, db: Any, body: Any, field: str) -> None:
        pid, _ = seed(db, pairs=1, labelled=0)
        answer = put(client, pid, body, T0)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == [field]

    def test_put_get_replace_delete(self, client: Any, db: Any) -> None:
        pid, _ = seed(db, pairs=1, labelled=0)
        assert client.get(f"/v1/projects/{pid}/export-schedule").status_code == 404
        body = {"every_seconds": 7200, "style": "conversational", "filters": {"reviewed": "exclude"}}
        first = put(client, pid, body, T0).json()
        assert first["style"] == "conversational"
        assert first["filters"]["reviewed"] == "exclude"
        assert first["incremental"] is False
        assert schedule_of(client, pid) == first

        # The same timing again later keeps the next slot; only the request changes.
        again = put(client, pid, body | {"format": "parquet"}, T0 + HOUR).json()
        assert (again["next_run_at"], again["format"]) == (first["next_run_at"], "parquet")
        # A new timing starts from now.
        moved = put(client, pid, {"every_seconds": 600}, T0 + HOUR).json()
        assert parse(moved["next_run_at"]) == T0 + HOUR + timedelta(minutes=10)
        assert moved["format"] == "jsonl"

        assert client.delete(f"/v1/projects/{pid}/export-schedule").status_code == 204
        assert client.get(f"/v1/projects/{pid}/export-schedule").status_code == 404
        assert client.delete(f"/v1/projects/{pid}/export-schedule").status_code == 204
        assert schedule_tasks.run_schedules(now=T0 + timedelta(days=2)) == []
        with db.session() as s:
            actions = list(
                s.scalars(
                    select(AuditEvent.action)
                    .where(AuditEvent.target_id == pid, AuditEvent.action.like("export_schedule.%"))
                    .order_by(AuditEvent.id)
                )
            )
        assert actions == ["export_schedule.set"] * 3 + ["export_schedule.deleted"]

    def test_a_stale_runner_does_nothing_after_a_put(self, client: Any, db: Any) -> None:
        pid, _ = seed(db)
        assert put(client, pid, {"every_seconds": 3600}, T0).status_code == 200
        with db.session() as s:
            (project_id, revision, due_at) = repository.due(s, T0 + HOUR)[0]
        # The schedule is replaced (same timing, new request) between the runner's read and its write.
        assert put(client, pid, {"every_seconds": 3600, "format": "parquet"}, T0).status_code == 200
        with db.session() as s:
            assert schedules.run_due(s, project_id, revision=revision, due_at=due_at, now=T0 + HOUR) is None
        made = schedule_tasks.run_schedules(now=T0 + HOUR)
        assert export_row(db, made[0]).format == "parquet"


class TestCron:
    def test_fields(self) -> None:
        parsed = cron.parse("*/15 9-17 * * mon-fri")
        assert parsed.minutes == (0, 15, 30, 45)
        assert parsed.hours == tuple(range(9, 18))
        assert parsed.days_of_week == frozenset({1, 2, 3, 4, 5})
        assert not parsed.either_day

    def test_day_of_month_or_day_of_week_when_both_are_restricted(self) -> None:
        parsed = cron.parse("0 0 13 * 5")  # the 13th, or any Friday (Vixie cron)
        assert parsed.either_day
        days = [d for d in range(1, 32) if parsed.matches_day(datetime(2026, 1, d).date())]
        assert days == [2, 9, 13, 16, 23, 30]  # Fridays of January 2026, and Tuesday the 13th

    @pytest.mark.parametrize(
        "expression",
        ["0 3 * * *", "*/15 9-17 * * mon-fri", "30 2 1,15 * *", "0 0 13 * 5", "5 4 * 2 sun", "59 23 31 * *"],
    )
    @pytest.mark.parametrize(
        "start",
        [datetime(2026, 1, 1, 10, 0, tzinfo=UTC), datetime(2026, 2, 27, 23, 59, 30, tzinfo=UTC)],
    )
    def test_next_and_previous_match_a_minute_by_minute_scan(self, expression: str, start: datetime) -> None:
        parsed = cron.parse(expression)

        def fires(t: datetime) -> bool:
            return parsed.matches_day(t.date()) and t.hour in parsed.hours and t.minute in parsed.minutes

        def step(t: datetime, direction: int) -> datetime:
            if parsed.matches_day(t.date()):
                return t + timedelta(minutes=direction)
            # Whole days that never fire are skipped (to the first or last minute of the next day).
            day = datetime.combine(t.date() + timedelta(days=direction), datetime.min.time(), UTC)
            return day if direction > 0 else day + timedelta(hours=23, minutes=59)

        minute = start.replace(second=0) + timedelta(minutes=1)
        while not fires(minute):
            minute = step(minute, 1)
        assert parsed.next_after(start) == minute
        minute = start.replace(second=0)
        while not fires(minute):
            minute = step(minute, -1)
        assert parsed.latest_at_or_before(start) == minute
        # A fire time is not "after" itself, and is its own latest.
        assert parsed.next_after(minute) > minute
        assert parsed.latest_at_or_before(minute) == minute
