"""The task outbox on Postgres: a task asked for in a unit of work is sent again when its send failed, its
run died or its message was lost, and never runs twice at once; a busy queue or a live run is left alone."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from app import background
from app import logging as logcontext
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.outbox import service
from app.outbox import tasks as outbox_tasks
from app.outbox.models import TaskOutbox
from app.outbox.runner import run_task
from app.tasks import RetryPolicy, TaskSpec

pytestmark = pytest.mark.integration

calls: list[dict[str, Any]] = []


def _work(**kwargs: Any) -> str:
    calls.append(kwargs)
    return "done"


class Flaky(Exception):
    pass


def _flaky(**kwargs: Any) -> None:
    calls.append(kwargs)
    raise Flaky


SPEC = TaskSpec.of("test.work", _work, retry=RetryPolicy())
FLAKY = TaskSpec.of("test.flaky", _flaky, retry=RetryPolicy(max_attempts=3, backoff=8, transient=(Flaky,)))


@pytest.fixture(autouse=True)
def _clear() -> None:
    calls.clear()


def rows(db: Any) -> list[TaskOutbox]:
    with db.session() as s:
        return list(s.scalars(select(TaskOutbox).order_by(TaskOutbox.created_at)))


def ask(db: Any, sent: list[tuple[str, dict[str, Any]]], **kwargs: Any) -> dict[str, Any]:
    """A unit of work that asks for exports.run_export; the message as it was sent after commit."""
    with db.session() as s:
        send_after_commit(s, "exports.run_export", **kwargs)
    return sent[-1][1]


class Sent(list[tuple[str, dict[str, Any]]]):
    """Messages as sent (with their outbox id); the broker refuses them while ``refuse`` holds anything."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse: list[bool] = []


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    out = Sent()

    def dispatch(name: str, kwargs: dict[str, Any]) -> bool:
        if out.refuse:
            return False
        out.append((name, kwargs))
        return True

    monkeypatch.setattr(background, "dispatch", dispatch)
    return out


def relay(monkeypatch: pytest.MonkeyPatch, *, empty: bool | None) -> dict[str, int]:
    monkeypatch.setattr(background, "queue_is_empty", lambda _task: empty)
    return outbox_tasks.relay()


def test_a_committed_task_runs_once_and_its_row_goes(db: Any, sent: Any) -> None:
    message = ask(db, sent, export_id="x")
    (row,) = rows(db)
    assert (row.task, row.kwargs, row.sent_at is not None) == ("exports.run_export", {"export_id": "x"}, True)
    assert message == {"export_id": "x", service.KEY: str(row.id)}
    assert run_task(SPEC, message, 1, heartbeat=False) == "done"
    assert calls == [{"export_id": "x"}]  # the outbox id is not the task's
    assert rows(db) == []
    # A redelivery of the same message (the broker's visibility timeout, a crossed resend) runs nothing.
    assert run_task(SPEC, message, 1, heartbeat=False) is None
    assert len(calls) == 1


def test_a_rolled_back_unit_of_work_leaves_no_row_and_sends_nothing(db: Any, sent: Any) -> None:
    def unit_of_work() -> None:
        with db.session() as s:
            send_after_commit(s, "exports.run_export", export_id="x")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        unit_of_work()
    assert rows(db) == []
    assert sent == []


def test_a_failed_send_is_sent_by_the_relay(db: Any, sent: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sent.refuse.append(True)
    with db.session() as s:
        send_after_commit(s, "exports.run_export", export_id="x")
    (row,) = rows(db)
    assert row.sent_at is None  # the send failed after commit: the row says so
    # The broker is still down: the relay's send fails too and the row stays unsent.
    assert relay(monkeypatch, empty=None)["failed"] == 1
    assert rows(db)[0].sent_at is None
    sent.refuse.clear()
    assert relay(monkeypatch, empty=None)["unsent"] == 1
    ((name, message),) = sent
    assert (name, message) == ("exports.run_export", {"export_id": "x", service.KEY: str(row.id)})
    assert rows(db)[0].resends == 2
    # Sent now: nothing more to do until it is lost or dies.
    assert relay(monkeypatch, empty=True) == {"unsent": 0, "stale": 0, "lost": 0, "failed": 0}


def test_a_resend_carries_the_request_that_first_asked_for_it(
    db: Any, sent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a message carries of its sender is read at send time (Celery's before_task_publish, the embedded
    # runner's queue): the relay runs in another process, outside the request, so the row keeps it.
    carried: list[dict[str, str]] = []
    send = background.dispatch

    def dispatch(name: str, kwargs: dict[str, Any]) -> bool:
        carried.append(logcontext.task_headers())
        return send(name, kwargs)

    monkeypatch.setattr(background, "dispatch", dispatch)
    sent.refuse.append(True)
    with logcontext.bound(request_id="req-1", project_id="p-1"), db.session() as s:
        send_after_commit(s, "exports.run_export", export_id="x")
    sent.refuse.clear()
    assert relay(monkeypatch, empty=None)["unsent"] == 1
    first = {logcontext.REQUEST_ID_HEADER: "req-1", logcontext.PROJECT_ID_HEADER: "p-1"}
    assert carried == [first, first]
    # A send from no request keeps nothing, and its resend carries nothing.
    carried.clear()
    sent.refuse.append(True)
    with db.session() as s:
        send_after_commit(s, "exports.run_export", export_id="y")
    sent.refuse.clear()
    assert relay(monkeypatch, empty=None)["unsent"] == 1
    assert carried == [{}, {}]


def test_a_run_that_stopped_beating_is_sent_again_and_a_live_one_is_not(
    db: Any, sent: Any, monkeypatch: pytest.MonkeyPatch, override_settings: Any
) -> None:
    override_settings(outbox_stale_after_seconds=15)
    dead = ask(db, sent, export_id="dead")
    alive = ask(db, sent, export_id="alive")
    with db.session() as s:
        dead_hold = service.claim(s, uuid.UUID(dead[service.KEY]), utcnow() - timedelta(seconds=16))
        alive_hold = service.claim(s, uuid.UUID(alive[service.KEY]), utcnow() - timedelta(seconds=10))
    assert dead_hold is not None
    assert alive_hold is not None
    sent.clear()
    assert relay(monkeypatch, empty=False)["stale"] == 1
    assert [kwargs["export_id"] for _, kwargs in sent] == ["dead"]
    # The resent message runs; the dead run's late finish (it was only slow) removes nothing of the new one.
    with db.session() as s:
        assert service.claim(s, uuid.UUID(alive[service.KEY]), utcnow()) is None  # held by a live run
    assert run_task(SPEC, sent[0][1], 1, heartbeat=False) == "done"
    with db.session() as s:
        service.finish(s, dead_hold)
    assert [r.kwargs["export_id"] for r in rows(db)] == ["alive"]


def test_a_lost_message_is_sent_again_only_while_its_queue_is_empty(
    db: Any, sent: Any, monkeypatch: pytest.MonkeyPatch, override_settings: Any
) -> None:
    override_settings(outbox_lost_after_seconds=20)
    message = ask(db, sent, export_id="x")
    row_id = uuid.UUID(message[service.KEY])
    sent.clear()
    # Sent 10 s ago and not taken: it may still be on its way.
    _sent_ago(db, row_id, 10)
    assert relay(monkeypatch, empty=True)["lost"] == 0
    # 30 s ago: in a busy queue (or one the broker cannot report on) it is waiting, not lost.
    _sent_ago(db, row_id, 30)
    assert relay(monkeypatch, empty=False)["lost"] == 0
    assert relay(monkeypatch, empty=None)["lost"] == 0
    assert sent == []
    # The queue is empty and no run took it: lost (the broker forgot it, or a dead worker held it).
    assert relay(monkeypatch, empty=True)["lost"] == 1
    assert sent == [("exports.run_export", message)]
    assert run_task(SPEC, message, 1, heartbeat=False) == "done"
    # The original message, delivered at last, finds the work done.
    assert run_task(SPEC, message, 1, heartbeat=False) is None
    assert len(calls) == 1


def test_a_retry_hands_the_row_back_until_it_is_due(
    db: Any, sent: Any, monkeypatch: pytest.MonkeyPatch, override_settings: Any
) -> None:
    override_settings(outbox_lost_after_seconds=20)
    message = ask(db, sent, export_id="x")
    with pytest.raises(Flaky):
        run_task(FLAKY, message, 1, heartbeat=False)
    (row,) = rows(db)
    assert row.run_token is None
    # Due when the retry is (8 s, the first backoff) plus the lost limit: not before.
    assert row.sent_at is not None
    assert row.sent_at > utcnow() + timedelta(seconds=6)
    assert relay(monkeypatch, empty=True)["lost"] == 0
    # The retry takes the row again; the last attempt's failure ends it.
    with pytest.raises(Flaky):
        run_task(FLAKY, message, 2, heartbeat=False)
    with pytest.raises(Flaky):
        run_task(FLAKY, message, 3, heartbeat=False)
    assert rows(db) == []
    assert len(calls) == 3


def test_a_celery_run_beats_while_it_works(db: Any, sent: Any, override_settings: Any) -> None:
    override_settings(outbox_heartbeat_seconds=0.05)
    message = ask(db, sent, export_id="x")
    seen: list[Any] = []

    def slow(**_kwargs: Any) -> None:
        import time

        first = rows(db)[0].heartbeat_at
        time.sleep(0.5)
        seen.extend([first, rows(db)[0].heartbeat_at])

    run_task(TaskSpec.of("test.slow", slow, retry=RetryPolicy()), message, 1, heartbeat=True)
    assert seen[1] > seen[0]
    assert rows(db) == []


def _sent_ago(db: Any, row_id: uuid.UUID, seconds: float) -> None:
    with db.session() as s:
        s.execute(
            update(TaskOutbox)
            .where(TaskOutbox.id == row_id)
            .values(sent_at=utcnow() - timedelta(seconds=seconds))
        )


def test_the_relay_runs_in_the_beat_process_not_in_a_worker_pool(
    monkeypatch: pytest.MonkeyPatch, override_settings: Any
) -> None:
    """Scheduled as a Celery task it would wait behind long tasks in a busy pool; beat runs it in a thread."""
    import threading

    from workers.celery_app import celery_app
    from workers.relay import start_relay_thread

    assert service.RELAY_TASK not in celery_app.conf.beat_schedule
    assert "maintenance.reconcile" in celery_app.conf.beat_schedule
    override_settings(outbox_relay_interval_seconds=0.05)
    ran = threading.Event()
    monkeypatch.setattr(outbox_tasks, "relay", lambda: ran.set())
    stop = threading.Event()
    thread = start_relay_thread(stop)
    assert ran.wait(5)
    assert thread.daemon
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
