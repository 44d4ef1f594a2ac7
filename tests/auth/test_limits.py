"""Each input and resource limit: its status, and that nothing was stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.auth.ratelimit import MemoryRateLimiter, RedisRateLimiter
from app.prompts.models import Prompt
from app.queue.models import Assignment
from tests.factories import make_annotator, make_pairs, make_project
from tests.services import redis_url


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def count(session: Any, model: Any) -> int:
    return session.scalar(select(func.count()).select_from(model))


def item(n: int, responses: int = 2, text: str = "answer") -> dict[str, Any]:
    return {"external_id": f"p{n}", "prompt": "q", "responses": [f"{text} {i}" for i in range(responses)]}


class TestRateLimits:
    def test_per_key_limit_answers_429_with_retry_after(self, client: Any, override_settings: Any) -> None:
        override_settings(rate_limit_per_minute=3)
        statuses = [client.get("/v1/me").status_code for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        limited = client.get("/v1/me")
        assert 1 <= int(limited.headers["Retry-After"]) <= 61
        assert limited.json()["code"] == "rate_limited"

    def test_keys_have_separate_budgets(self, client: Any, override_settings: Any) -> None:
        key = client.post("/v1/keys", json={"role": "data_team", "name": "dt"}).json()["key"]
        override_settings(rate_limit_per_minute=2)
        assert [client.get("/v1/me").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/v1/me", headers=bearer(key)).status_code == 200

    def test_failed_authentications_are_limited_per_address(
        self, client: Any, override_settings: Any
    ) -> None:
        override_settings(auth_failures_per_minute=3)
        statuses = [client.get("/v1/me", headers=bearer("wrong")).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 429, 429]

    @pytest.mark.integration
    def test_redis_counters_are_shared_between_limiters(self) -> None:
        import redis

        redis.Redis.from_url(redis_url()).flushdb()
        first, second = RedisRateLimiter(redis_url()), RedisRateLimiter(redis_url())
        assert [first.hit("k", 3), second.hit("k", 3), first.hit("k", 3)] == [None, None, None]
        assert second.hit("k", 3) is not None
        assert MemoryRateLimiter().hit("k", 3) is None  # a process-local limiter knows nothing of them

    def test_production_uses_redis_when_the_broker_is_redis(self, override_settings: Any) -> None:
        from app.config import get_settings

        override_settings(broker_url="redis://127.0.0.1:6379/3")
        assert get_settings().rate_limit_backend_url == "redis://127.0.0.1:6379/3"


class TestLeaseCap:
    def test_claims_past_the_cap_are_refused_and_create_nothing(
        self, client: Any, session: Any, override_settings: Any
    ) -> None:
        override_settings(max_active_leases_per_annotator=2)
        project = make_project(session)
        make_pairs(session, project, 5)
        make_annotator(session, "greedy", project.id)
        make_annotator(session, "someone-else", project.id)
        session.commit()
        url = f"/v1/projects/{project.id}/queue/claim"
        assert [client.post(url, json={"annotator": "greedy"}).status_code for _ in range(2)] == [200, 200]
        refused = client.post(url, json={"annotator": "greedy"})
        assert refused.status_code == 429
        assert refused.json()["code"] == "active_lease_limit"
        assert int(refused.headers["Retry-After"]) > 0
        assert count(session, Assignment) == 2
        assert client.post(url, json={"annotator": "someone-else"}).status_code == 200


class TestInputCaps:
    @pytest.fixture
    def project_id(self, client: Any) -> str:
        return client.post("/v1/projects", json={"name": "caps"}).json()["id"]

    def test_items_per_batch(
        self, client: Any, project_id: str, session: Any, override_settings: Any, recorded_tasks: list[Any]
    ) -> None:
        override_settings(max_items_per_batch=3)
        response = client.post(
            f"/v1/projects/{project_id}/prompts", json={"items": [item(n) for n in range(4)]}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.items"
        assert count(session, Prompt) == 0

    def test_responses_per_prompt(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any]
    ) -> None:
        response = client.post(f"/v1/projects/{project_id}/prompts", json={"items": [item(0, responses=17)]})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body.items[0].responses"
        assert count(session, Prompt) == 0

    def test_text_length(
        self, client: Any, project_id: str, session: Any, override_settings: Any, recorded_tasks: list[Any]
    ) -> None:
        override_settings(max_text_chars=50)
        response = client.post(f"/v1/projects/{project_id}/prompts", json={"items": [item(0, text="x" * 60)]})
        assert response.status_code == 422
        assert "longer than 50" in response.json()["errors"][0]["message"]
        assert count(session, Prompt) == 0

    def test_page_size(self, client: Any, project_id: str) -> None:
        response = client.get(f"/v1/projects/{project_id}/pairs?limit=201")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "query.limit"

    def test_extra_fields_are_refused(self, client: Any, project_id: str, session: Any) -> None:
        for body in ({"name": "x", "status": "archived"}, {"name": "x", "pairs_released": 0}):
            response = client.post("/v1/projects", json=body)
            assert response.status_code == 422
        claim = client.post(f"/v1/projects/{project_id}/queue/claim", json={"lease_expires_at": "2030-01-01"})
        assert claim.status_code == 422
        assert count(session, Assignment) == 0
