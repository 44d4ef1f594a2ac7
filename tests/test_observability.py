"""Logs, metrics and readiness (issue 14, "Observable"): JSON lines with the request id and extra fields,
the request id carried into the tasks a request sends, /metrics after claims and labels, /readyz."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import background
from app.config import get_settings
from app.logging import configure_logging
from app.projects.models import Project
from tests.factories import make_pairs, make_project
from tests.queue.test_fastlane import as_key, claim, label, new_key


@pytest.fixture
def project(session: Any) -> Project:
    made = make_project(session, gold_rate=0.0)
    make_pairs(session, made, 5)
    session.commit()
    return made


@pytest.fixture
def log_lines(override_settings: Any) -> Iterator[io.StringIO]:
    """Every log line of the process, as configured by app/logging.py with REAL_LOG_JSON on."""
    override_settings(log_json="true", log_level="INFO")
    buffer = io.StringIO()
    handler = configure_logging(get_settings(), stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


def events(buffer: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == name]


def wait_for_runner(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not background.get_runner().idle():
        assert time.monotonic() < deadline, "the embedded runner did not finish its tasks"
        time.sleep(0.05)


class TestLogs:
    def test_a_request_line_carries_its_request_id_and_extra_fields(
        self, client: Any, project: Project, log_lines: io.StringIO
    ) -> None:
        key = new_key(client, "ann", projects=[project.id])
        claimed = client.post(
            f"/v1/projects/{project.id}/queue/claim", headers=as_key(key) | {"X-Request-ID": "req-claim-1"}
        )
        assert claimed.status_code == 200, claimed.text
        assignment = claimed.json()["assignment_id"]
        labelled = label(client, assignment, key, {"choice": "b"}, **{"X-Request-ID": "req-label-1"})
        assert labelled.status_code == 201, labelled.text

        (claim_line,) = events(log_lines, "queue.claimed")
        assert claim_line["request_id"] == "req-claim-1"
        assert claim_line["assignment_id"] == assignment  # an extra= field
        assert claim_line["project_id"] == str(project.id)
        assert claim_line["level"] == "info"
        assert claim_line["logger"] == "app.queue.service"
        (label_line,) = events(log_lines, "queue.labeled")
        assert label_line["request_id"] == "req-label-1"
        assert label_line["choice"] == "b"
        assert label_line["assignment_id"] == assignment

    def test_the_console_format_shows_the_fields_as_key_value(
        self, client: Any, project: Project, override_settings: Any
    ) -> None:
        override_settings(log_json="false")
        buffer = io.StringIO()
        handler = configure_logging(get_settings(), stream=buffer)
        try:
            key = new_key(client, "ann", projects=[project.id])
            claimed = client.post(
                f"/v1/projects/{project.id}/queue/claim", headers=as_key(key) | {"X-Request-ID": "req-kv"}
            )
        finally:
            logging.getLogger().removeHandler(handler)
        (line,) = [line for line in buffer.getvalue().splitlines() if " queue.claimed " in line]
        assert " request_id=req-kv " in line
        assert f"assignment_id={claimed.json()['assignment_id']}" in line
        assert f"project_id={project.id}" in line

    def test_a_task_sent_by_a_request_carries_the_request_id(
        self, client: Any, project: Project, log_lines: io.StringIO
    ) -> None:
        """The embedded runner: the export task's lines name their task, task id, project and request."""
        created = client.post(
            f"/v1/projects/{project.id}/exports", json={}, headers={"X-Request-ID": "req-x"}
        )
        assert created.status_code == 202, created.text
        wait_for_runner()
        (finished,) = events(log_lines, "exports.finished")
        assert finished["export_id"] == created.json()["id"]
        assert finished["request_id"] == "req-x"
        assert finished["task"] == "exports.run_export"
        assert finished["task_id"]
        assert finished["project_id"] == str(project.id)


def scrape(client: Any, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.text
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class TestMetrics:
    def test_claims_labels_routes_queue_and_tasks_after_a_claim_and_a_label(
        self, client: Any, project: Project
    ) -> None:
        before = scrape(client)
        key = new_key(client, "ann", projects=[project.id])
        first = claim(client, project.id, key)
        assert label(client, first.json()["assignment_id"], key).status_code == 201
        assert claim(client, project.id, key).status_code == 200  # held: a live lease
        created = client.post(f"/v1/projects/{project.id}/exports", json={})
        assert created.status_code == 202
        wait_for_runner()
        after = scrape(client)

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("real_align_claims_total", outcome="claimed") == 2
        assert delta("real_align_labels_total", outcome="created") == 1
        route = "/v1/projects/{project_id}/queue/claim"
        assert (
            delta("real_align_http_request_duration_seconds_count", method="POST", route=route, status="200")
            == 2
        )
        raw = f"/v1/projects/{project.id}/queue/claim"
        assert not any(dict(labels).get("route") == raw for _name, labels in after)
        # 5 pairs: one labelled, one leased, three waiting.
        assert value(after, "real_align_queue_depth", project_id=str(project.id)) == 3
        assert value(after, "real_align_live_leases", project_id=str(project.id)) == 1
        assert delta("real_align_tasks_total", task="exports.run_export", outcome="success") == 1
        assert delta("real_align_export_duration_seconds_count", format="jsonl") == 1

    def test_retries_and_failures_of_tasks_are_counted(self, client: Any) -> None:
        from sqlalchemy.exc import OperationalError

        from app.tasks import RetryPolicy, TaskSpec

        def flaky(fail: str) -> None:
            raise OperationalError("SELECT 1", {}, Exception(fail)) if fail == "db" else ValueError(fail)

        spec = TaskSpec.of(
            "tests.flaky", flaky, retry=RetryPolicy(max_attempts=2, transient=(OperationalError,))
        )
        before = scrape(client)
        for fail, attempt in (("db", 1), ("db", 2), ("bug", 1)):
            with pytest.raises((OperationalError, ValueError)):
                spec.run({"fail": fail}, attempt)
        after = scrape(client)
        counted = {
            outcome: value(after, "real_align_tasks_total", task="tests.flaky", outcome=outcome)
            - value(before, "real_align_tasks_total", task="tests.flaky", outcome=outcome)
            for outcome in ("retry", "failure", "success")
        }
        assert counted == {"retry": 1, "failure": 2, "success": 0}

    def test_embedded_texts_are_counted(self, client: Any, session: Any) -> None:
        import hashlib

        from app.embeddings import service

        before = scrape(client)
        rows: list[dict[str, object]] = [
            {
                "model": "counted-model",
                "text_sha256": hashlib.sha256(f"t{n}".encode()).hexdigest(),
                "dim": 2,
                "vector": b"\0" * 8,
                "token_count": 1,
                "truncated": False,
            }
            for n in range(3)
        ]
        service.store(session, rows)
        session.commit()
        after = scrape(client)
        name = "real_align_embedded_texts_total"
        assert value(after, name, model="counted-model") - value(before, name, model="counted-model") == 3

    def test_metrics_can_be_off_or_behind_a_token(self, client: Any, override_settings: Any) -> None:
        override_settings(metrics_enabled="false")
        assert client.get("/metrics").status_code == 404
        override_settings(metrics_enabled="true", metrics_token="scrape-token-123")
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert (
            "real_align_claims_total"
            in client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).text
        )


class TestReadiness:
    def test_ready_with_the_database_and_no_broker(self, client: Any) -> None:
        answer = client.get("/readyz")
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "checks": {"database": "ok"}}

    def test_an_unreachable_broker_is_503_naming_it(self, client: Any, override_settings: Any) -> None:
        override_settings(broker_url="redis://127.0.0.1:1/0")
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["code"] == "not_ready"
        assert [e["field"] for e in problem["errors"]] == ["broker"]
        assert "broker" in problem["detail"]
        assert "database" not in problem["detail"]

    def test_the_redis_broker_answering_is_ready(self, client: Any, override_settings: Any) -> None:
        from tests.services import redis_url

        override_settings(broker_url=redis_url())
        answer = client.get("/readyz")
        assert answer.status_code == 200, answer.text
        assert answer.json()["checks"] == {"database": "ok", "broker": "ok"}
