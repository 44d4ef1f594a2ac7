"""The task registry: one entry per task name, each with its own retry policy, read by both runners."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from app.background import periodic_tasks
from app.tasks import DATABASE_ERRORS, Attempt, RetryPolicy, registry

ROOT = Path(__file__).resolve().parents[1]
NAMES = {
    "active.refit_reward_model",
    "active.refresh_priorities",
    "embeddings.embed_prompts",
    "embeddings.embed_texts",
    "exports.run_export",
    "exports.run_schedules",
    "maintenance.reconcile",
    "neighbors.build_index",
    "outbox.relay",
    "neighbors.mark_redundant",
    "neighbors.sweep_redundant",
    "quality.aggregate",
    "quality.aggregate_stale",
    "simulations.run",
    "webhooks.deliver",
    "webhooks.sweep",
}


class TestRegistry:
    def test_the_names_are_the_celery_and_beat_names(self) -> None:
        assert set(registry()) == NAMES
        assert {name for name, _ in periodic_tasks()} <= NAMES

    def test_each_entry_point_lives_in_its_domains_tasks_module(self) -> None:
        for spec in registry().values():
            assert spec.function.__module__.endswith(".tasks"), spec.name

    def test_importing_the_task_modules_loads_no_model_library(self) -> None:
        # The API sends tasks (so it loads the registry) but must never pay for torch.
        code = (
            "import sys; from app.tasks import registry; registry(); "
            "loaded = [m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules]; "
            "assert not loaded, loaded"
        )
        subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)

    def test_policies_retry_what_each_task_can_outlive(self) -> None:
        tasks = registry()
        export = tasks["exports.run_export"].retry
        assert export.max_attempts == 5
        for error in (OperationalError("x", {}, Exception()), TimeoutError(), OSError()):
            assert export.retries(error, attempt=1)
        assert not export.retries(ValueError(), attempt=1)  # a bug or bad data fails at once
        assert not export.retries(TimeoutError(), attempt=5)  # the last attempt
        for name in ("embeddings.embed_prompts", "quality.aggregate", "neighbors.mark_redundant"):
            assert set(DATABASE_ERRORS) <= set(tasks[name].retry.transient), name
            assert not tasks[name].retry.retries(OSError(), attempt=1), name
        # Webhook deliveries retry through their own rows (backoff, sweep); periodic tasks on their next tick.
        for name in ["webhooks.deliver", *(name for name, _ in periodic_tasks())]:
            assert tasks[name].retry.max_attempts == 1, name

    def test_embeddings_go_to_their_own_queue(self) -> None:
        assert {spec.name for spec in registry().values() if spec.queue != "default"} == {
            "embeddings.embed_prompts",
            "embeddings.embed_texts",
        }


class TestRetryPolicy:
    def test_the_delay_is_celerys_exponential_backoff(self) -> None:
        from celery.utils.time import get_exponential_backoff_interval

        policy = RetryPolicy(max_attempts=9, backoff=2, backoff_max=120, jitter=False)
        for attempt in range(1, 9):
            expected = get_exponential_backoff_interval(2, attempt - 1, 120, full_jitter=False)
            assert policy.delay(attempt) == expected
        jittered = RetryPolicy(max_attempts=3, backoff=2, backoff_max=120)
        assert {jittered.delay(2) for _ in range(200)} <= set(range(5))

    def test_an_attempt_knows_whether_the_runner_comes_back(self) -> None:
        policy = RetryPolicy(max_attempts=2, transient=(InterfaceError,))
        error = InterfaceError("x", {}, Exception())
        assert Attempt(1, policy).will_retry(error)
        assert not Attempt(2, policy).will_retry(error)
        assert not Attempt(1, policy).will_retry(KeyError())


class TestCeleryRegistration:
    def test_each_task_autoretries_only_its_transient_errors(self) -> None:
        from workers.celery_app import celery_app
        from workers.tasks import registered

        for name, spec in registry().items():
            task = registered[name]
            assert tuple(task.autoretry_for) == spec.retry.transient, name
            assert task.max_retries == spec.retry.max_attempts - 1, name
            assert task.retry_backoff == spec.retry.backoff, name
            assert task.retry_backoff_max == spec.retry.backoff_max, name
            assert task.retry_jitter is spec.retry.jitter, name
        assert celery_app.conf.task_routes == {
            "embeddings.embed_prompts": {"queue": "embeddings"},
            "embeddings.embed_texts": {"queue": "embeddings"},
        }

    @pytest.mark.parametrize("name", sorted(NAMES))
    def test_the_worker_runs_the_registered_function(self, name: str) -> None:
        from workers.tasks import registered

        assert registered[name].name == name
        assert registry()[name].function is not None
