"""Ingest: idempotency by external_id, conflicts, bad input that stores nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.jobs.models import Job
from app.prompts.models import Prompt, Response


def count(session: Any, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def project_id(client: Any) -> str:
    response = client.post("/v1/projects", json={"name": "ingest tests"})
    assert response.status_code == 201
    return response.json()["id"]


def item(
    external_id: str, prompt: Any = "What is 2+2?", responses: list[Any] | None = None
) -> dict[str, Any]:
    return {"external_id": external_id, "prompt": prompt, "responses": responses or ["4", "Four.", "2+2=4"]}


class TestIngest:
    def test_accepts_and_sends_embedding_after_commit(
        self, client: Any, project_id: str, db: Any, recorded_tasks: list[Any]
    ) -> None:
        body = {
            "items": [
                item("p1"),
                item("p2", responses=[{"text": "yes", "model": "m1", "external_id": "r1"}, "yes", "no"]),
            ]
        }
        response = client.post(f"/v1/projects/{project_id}/prompts", json=body)
        assert response.status_code == 202
        result = response.json()
        assert (result["accepted"], result["duplicates"], result["conflicts"]) == (2, 0, [])
        assert recorded_tasks
        assert recorded_tasks[0][0] == "embeddings.embed_prompts"
        assert len(recorded_tasks[0][1]["prompt_ids"]) == 2
        stored = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/p2").json()
        # Every response is kept, the repeated text too, with its external id and model.
        assert [r["text"] for r in stored["responses"]] == ["yes", "yes", "no"]
        assert stored["responses"][0]["model"] == "m1"
        assert stored["responses"][0]["external_id"] == "r1"
        assert stored["status"] == "pending"
        job = client.get(f"/v1/jobs/{result['job_id']}").json()
        assert (job["status"], job["done"], job["total"]) == ("queued", 0, 2)

    def test_same_content_again_is_a_duplicate(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any]
    ) -> None:
        url = f"/v1/projects/{project_id}/prompts"
        client.post(url, json={"items": [item("p1")]})
        again = client.post(url, json={"items": [item("p1")]}).json()
        assert (again["accepted"], again["duplicates"], again["conflicts"], again["job_id"]) == (
            0,
            1,
            [],
            None,
        )
        assert count(session, Prompt) == 1
        assert count(session, Job) == 1

    def test_other_content_is_a_conflict_and_changes_nothing(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any]
    ) -> None:
        url = f"/v1/projects/{project_id}/prompts"
        client.post(url, json={"items": [item("p1")]})
        result = client.post(url, json={"items": [item("p1", responses=["5", "five"]), item("p9")]}).json()
        assert result["accepted"] == 1
        assert [(c["index"], c["external_id"]) for c in result["conflicts"]] == [(0, "p1")]
        kept = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/p1").json()
        assert [r["text"] for r in kept["responses"]] == ["4", "Four.", "2+2=4"]

    def test_chat_prompts_are_kept_as_messages(
        self, client: Any, project_id: str, recorded_tasks: list[Any]
    ) -> None:
        messages = [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke"},
        ]
        client.post(f"/v1/projects/{project_id}/prompts", json={"items": [item("chat", prompt=messages)]})
        assert (
            client.get(f"/v1/projects/{project_id}/prompts/by-external-id/chat").json()["prompt"] == messages
        )


class TestBadInput:
    @pytest.mark.parametrize(
        ("bad_item", "field"),
        [
            (item("x", responses=["only one"]), "body.items[1].responses"),
            (item("x", responses=["one", "   "]), "body.items[1].responses"),
            (item("x", prompt="  "), "body.items[1].prompt"),
            (item("x", prompt=[]), "body.items[1].prompt"),
            ({**item("x"), "status": "paired"}, "body.items[1].status"),
            (item("x", responses=["a\x00b", "c"]), "body.items[1].responses[0]"),
            ({"prompt": "no id", "responses": ["a", "b"]}, "body.items[1].external_id"),
        ],
    )
    def test_rejected_batch_names_the_field_and_stores_nothing(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any], bad_item: Any, field: str
    ) -> None:
        response = client.post(f"/v1/projects/{project_id}/prompts", json={"items": [item("good"), bad_item]})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "invalid_input"
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem
        assert count(session, Prompt) == 0
        assert count(session, Response) == 0
        assert count(session, Job) == 0
        assert recorded_tasks == []

    def test_unknown_project_is_404(self, client: Any, recorded_tasks: list[Any]) -> None:
        response = client.post(f"/v1/projects/{uuid.uuid4()}/prompts", json={"items": [item("p")]})
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"

    def test_empty_batch_and_missing_key(self, client: Any, project_id: str) -> None:
        assert client.post(f"/v1/projects/{project_id}/prompts", json={"items": []}).status_code == 422
        anonymous = client.post(
            f"/v1/projects/{project_id}/prompts", json={"items": [item("p")]}, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401

    def test_oversized_body_is_413(self, client: Any, project_id: str, session: Any) -> None:
        huge = "x" * (9 * 1024 * 1024)
        response = client.post(
            f"/v1/projects/{project_id}/prompts", json={"items": [item("big", responses=[huge, "b"])]}
        )
        assert response.status_code == 413
        assert count(session, Prompt) == 0


class TestProjects:
    def test_defaults_update_and_archive(self, client: Any, recorded_tasks: list[Any]) -> None:
        created = client.post("/v1/projects", json={"name": "p"}).json()
        assert (
            created["strategy"],
            created["budget"],
            created["annotations_per_pair"],
            created["pairs_per_prompt"],
            created["lease_ttl_seconds"],
        ) == ("dissimilar", None, 1, 1, 600)
        changed = client.patch(f"/v1/projects/{created['id']}", json={"budget": 10, "strategy": "similar"})
        assert changed.status_code == 200
        assert changed.json()["budget"] == 10
        assert client.patch(f"/v1/projects/{created['id']}", json={"strategy": "best"}).status_code == 422
        assert client.delete(f"/v1/projects/{created['id']}").status_code == 204
        assert client.get(f"/v1/projects/{created['id']}").json()["status"] == "archived"
        refused = client.post(f"/v1/projects/{created['id']}/prompts", json={"items": [item("p")]})
        assert refused.status_code == 404

    def test_list_is_cursor_paginated(self, client: Any) -> None:
        ids = [client.post("/v1/projects", json={"name": f"p{n}"}).json()["id"] for n in range(5)]
        first = client.get("/v1/projects?limit=2").json()
        second = client.get(f"/v1/projects?limit=2&cursor={first['next_cursor']}").json()
        third = client.get(f"/v1/projects?limit=2&cursor={second['next_cursor']}").json()
        assert [p["id"] for p in first["items"] + second["items"] + third["items"]] == ids
        assert third["next_cursor"] is None
        assert client.get("/v1/projects?limit=500").status_code == 422
        assert client.get("/v1/projects?cursor=%21%21").json()["errors"][0]["field"] == "cursor"
