"""The project dependencies: the role is checked before the project is looked up, and a project the caller
may not see answers as a missing one does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.auth.world import World, build_world


@pytest.fixture
def world(db: Any, recorded_tasks: list[Any]) -> World:
    return build_world(db)


def call(client: Any, world: World, who: str, method: str, path: str, **kw: Any) -> Any:
    return client.request(method, path, headers={"Authorization": f"Bearer {world.keys[who]}"}, **kw)


UNKNOWN = uuid.UUID(int=1)


class TestProjectDep:
    @pytest.mark.parametrize(
        "route", ["/v1/projects/{p}", "/v1/projects/{p}/stats", "/v1/projects/{p}/prompts/{prompt}"]
    )
    def test_unknown_and_not_visible_projects_are_404(self, route: str, client: Any, world: World) -> None:
        for who, project in [("admin", UNKNOWN), ("data_team_own", UNKNOWN), ("data_team_other", None)]:
            path = route.format(p=project or world.ids["project"], prompt=world.ids["prompt"])
            answer = call(client, world, who, "GET", path)
            assert answer.status_code == 404, (who, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"

    def test_the_wrong_role_is_403_even_for_a_project_that_does_not_exist(
        self, client: Any, world: World
    ) -> None:
        for project in (world.ids["project"], UNKNOWN):
            answer = call(client, world, "annotator_a", "GET", f"/v1/projects/{project}/stats")
            assert answer.status_code == 403, answer.text

    def test_a_project_id_that_is_not_a_uuid_is_422_naming_it(self, client: Any, world: World) -> None:
        answer = call(client, world, "admin", "GET", "/v1/projects/not-a-uuid/stats")
        assert answer.status_code == 422
        assert [e["field"] for e in answer.json()["errors"]] == ["path.project_id"]

    def test_the_role_is_checked_and_counted_once_per_request(
        self, client: Any, world: World, override_settings: Any
    ) -> None:
        # The route and its project dependency share one role dependency: one rate-limit count, not two.
        override_settings(rate_limit_per_minute=3)
        path = f"/v1/projects/{world.ids['project']}/export-webhook/rotate-secret"
        assert [call(client, world, "admin", "POST", path).status_code for _ in range(4)] == [200] * 3 + [429]


class TestActiveProjectDep:
    def test_an_archived_project_stays_readable_but_takes_no_new_work(
        self, client: Any, world: World
    ) -> None:
        project = world.ids["project"]
        assert call(client, world, "data_team_own", "DELETE", f"/v1/projects/{project}").status_code == 204
        assert call(client, world, "data_team_own", "GET", f"/v1/projects/{project}").status_code == 200
        ingest = {"items": [{"external_id": "late", "prompt": "q", "responses": ["a", "b"]}]}
        for method, path, body in [
            ("POST", f"/v1/projects/{project}/prompts", ingest),
            ("POST", f"/v1/projects/{project}/reselect", None),
        ]:
            answer = call(client, world, "data_team_own", method, path, json=body)
            assert answer.status_code == 404, answer.text
            assert call(client, world, "annotator_a", method, path, json=body).status_code == 403


class TestReviewProjectDep:
    def test_a_reviewer_sees_its_projects_review_queue_only(self, client: Any, world: World) -> None:
        mine = f"/v1/projects/{world.ids['project']}/review"
        assert call(client, world, "reviewer", "GET", mine).status_code == 200
        assert (
            call(
                client, world, "reviewer", "GET", f"/v1/projects/{world.ids['other_project']}/review"
            ).status_code
            == 404
        )
        assert call(client, world, "reviewer", "GET", f"/v1/projects/{UNKNOWN}/review").status_code == 404

    def test_an_annotator_without_the_flag_is_403_before_the_lookup(self, client: Any, world: World) -> None:
        for project in (world.ids["project"], UNKNOWN):
            answer = call(client, world, "annotator_b", "GET", f"/v1/projects/{project}/review")
            assert answer.status_code == 403, answer.text
