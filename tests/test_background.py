"""The embedded runner: the same retry policy as Celery, retries waiting without blocking other tasks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from app import background
from app.tasks import Attempt, RetryPolicy, TaskSpec, registry

TRANSIENT = OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


@pytest.fixture
def runner() -> Iterator[background.EmbeddedRunner]:
    runner = background.EmbeddedRunner(retry_delay_scale=0.0)
    yield runner
    runner.stop()


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    def add(name: str, function: Callable[..., Any], retry: RetryPolicy) -> None:
        monkeypatch.setitem(registry(), name, TaskSpec.of(name, function, retry=retry))

    return add


def wait_idle(runner: background.EmbeddedRunner, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not runner.idle():
        assert time.monotonic() < deadline, "the runner never went idle"
        time.sleep(0.01)


class TestEmbeddedRunner:
    def test_a_transient_error_is_retried_until_it_passes(
        self, runner: background.EmbeddedRunner, register: Callable[..., None]
    ) -> None:
        attempts: list[int] = []

        def flaky(n: int, attempt: Attempt) -> None:
            attempts.append(attempt.number)
            if len(attempts) < 3:
                raise TRANSIENT

        register("tests.flaky", flaky, RetryPolicy(max_attempts=4, transient=(OperationalError,)))
        runner.submit("tests.flaky", {"n": 1})
        wait_idle(runner)
        assert attempts == [1, 2, 3]

    def test_a_transient_error_stops_after_the_policys_attempts(
        self, runner: background.EmbeddedRunner, register: Callable[..., None]
    ) -> None:
        calls: list[int] = []

        def down() -> None:
            calls.append(1)
            raise TRANSIENT

        register("tests.down", down, RetryPolicy(max_attempts=3, transient=(OperationalError,)))
        runner.submit("tests.down", {})
        wait_idle(runner)
        assert len(calls) == 3

    def test_any_other_error_is_not_retried(
        self, runner: background.EmbeddedRunner, register: Callable[..., None]
    ) -> None:
        calls: list[int] = []

        def bug() -> None:
            calls.append(1)
            raise ValueError("a bug")

        register("tests.bug", bug, RetryPolicy(max_attempts=5, transient=(OperationalError,)))
        runner.submit("tests.bug", {})
        wait_idle(runner)
        assert calls == [1]

    def test_a_retry_waiting_for_its_backoff_holds_up_no_other_task(
        self, register: Callable[..., None]
    ) -> None:
        runner = background.EmbeddedRunner(retry_delay_scale=1.0)
        order: list[str] = []

        def flaky() -> None:
            order.append("flaky")
            if order.count("flaky") == 1:
                raise TRANSIENT

        # Without jitter the second attempt waits backoff * 2**0 = 1 s.
        policy = RetryPolicy(max_attempts=2, backoff=1, jitter=False, transient=(OperationalError,))
        register("tests.flaky", flaky, policy)
        register("tests.quick", lambda: order.append("quick"), RetryPolicy())
        try:
            runner.submit("tests.flaky", {})
            runner.submit("tests.quick", {})
            time.sleep(0.5)
            assert order == ["flaky", "quick"]
            assert not runner.idle()  # a retry is due: not idle
            wait_idle(runner)
            assert order == ["flaky", "quick", "flaky"]
        finally:
            runner.stop()
