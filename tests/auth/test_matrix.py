"""Every route × every kind of caller: the expected status, cell by cell."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from app.main import create_app
from tests.auth.world import World, build_world
from tests.conftest import ADMIN_KEY, truncate_all
from tests.simulation.jobs import TINY_INPUT, TINY_PARAMETERS

CALLERS = [
    "anonymous",
    "malformed",
    "revoked",
    "annotator_a",
    "annotator_b",
    "reviewer",
    "data_team_own",
    "data_team_other",
    "admin",
]
UNAUTH = {"anonymous": 401, "malformed": 401, "revoked": 401}


def row(
    admin: int, dt_own: int, dt_other: int, ann_a: int, ann_b: int, reviewer: int | None = None
) -> dict[str, int]:
    """Expected statuses; the reviewer (an annotator of P with the flag) answers as annotator B by default."""
    return {
        **UNAUTH,
        "admin": admin,
        "data_team_own": dt_own,
        "data_team_other": dt_other,
        "annotator_a": ann_a,
        "annotator_b": ann_b,
        "reviewer": ann_b if reviewer is None else reviewer,
    }


ADMIN_ONLY = row(200, 403, 403, 403, 403)


@dataclass(frozen=True)
class Multipart:
    """A multipart/form-data body: form fields and files (name → (file name, bytes, media type))."""

    fields: dict[str, str]
    files: dict[str, tuple[str, bytes, str]]


SIMULATION_UPLOAD = Multipart(
    {"parameters": json.dumps(TINY_PARAMETERS)}, {"data": ("tiny.jsonl", TINY_INPUT, "application/x-ndjson")}
)
PROJECT_READ = row(200, 200, 404, 403, 403)

# (method, path template) → (request body, expected status per caller)
MATRIX: dict[tuple[str, str], tuple[Any, dict[str, int]]] = {
    ("POST", "/v1/keys"): ({"role": "annotator", "name": "newcomer"}, row(201, 403, 403, 403, 403)),
    ("GET", "/v1/keys"): (None, ADMIN_ONLY),
    ("DELETE", "/v1/keys/{key_id}"): (None, row(204, 403, 403, 403, 403)),
    ("PATCH", "/v1/principals/{name}"): ({"reviewer": True}, ADMIN_ONLY),
    ("GET", "/v1/me"): (None, row(200, 200, 200, 200, 200)),
    ("GET", "/v1/audit"): (None, ADMIN_ONLY),
    ("GET", "/v1/me/projects"): (None, row(200, 200, 200, 200, 200)),
    # Sign-in takes the key from the bearer header when the body has none; sign-out answers anyone.
    ("POST", "/v1/session"): (None, row(201, 201, 201, 201, 201)),
    ("DELETE", "/v1/session"): (None, {caller: 204 for caller in CALLERS}),
    ("POST", "/v1/projects"): ({"name": "new"}, row(201, 201, 201, 403, 403)),
    ("GET", "/v1/projects"): (None, row(200, 200, 200, 403, 403)),
    ("GET", "/v1/projects/{project_id}"): (None, PROJECT_READ),
    ("PATCH", "/v1/projects/{project_id}"): ({"instructions": "Be kind."}, PROJECT_READ),
    ("DELETE", "/v1/projects/{project_id}"): (None, row(204, 204, 404, 403, 403)),
    ("GET", "/v1/projects/{project_id}/stats"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/quality"): (None, PROJECT_READ),
    ("POST", "/v1/projects/{project_id}/quality/refresh"): (None, row(202, 202, 404, 403, 403)),
    ("GET", "/v1/projects/{project_id}/annotators"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/review"): (None, row(200, 200, 404, 403, 403, reviewer=200)),
    ("POST", "/v1/projects/{project_id}/pairs/{pair_id}/review"): (
        {"verdict": "a"},
        row(201, 201, 404, 403, 403, reviewer=201),
    ),
    ("GET", "/v1/projects/{project_id}/pairs/{pair_id}/review"): (
        None,
        row(200, 200, 404, 403, 403, reviewer=200),
    ),
    ("GET", "/v1/projects/{project_id}/progress"): (None, row(200, 403, 403, 200, 200)),
    ("PUT", "/v1/projects/{project_id}/pairs/{pair_id}/gold"): (
        {"answer": "b"},
        row(200, 200, 404, 403, 403),
    ),
    ("POST", "/v1/projects/{project_id}/reselect"): (None, row(202, 202, 404, 403, 403)),
    ("GET", "/v1/projects/{project_id}/prompts"): (None, PROJECT_READ),
    ("POST", "/v1/projects/{project_id}/prompts"): (
        {"items": [{"external_id": "new", "prompt": "q", "responses": ["a", "b"]}]},
        row(202, 202, 404, 403, 403),
    ),
    ("GET", "/v1/projects/{project_id}/prompts/by-external-id/{external_id}"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/prompts/{prompt_id}"): (None, PROJECT_READ),
    # The streamed JSONL upload: a JSON object is one line of it.
    ("POST", "/v1/projects/{project_id}/prompts:upload"): (
        {"external_id": "uploaded", "prompt": "q", "responses": ["a", "b"]},
        row(202, 202, 404, 403, 403),
    ),
    ("GET", "/v1/jobs/{job_id}"): (None, PROJECT_READ),
    ("GET", "/v1/jobs/{job_id}/errors"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/pairs"): (None, PROJECT_READ),
    ("POST", "/v1/projects/{project_id}/queue/claim"): (None, row(200, 403, 403, 200, 200)),
    ("POST", "/v1/assignments/{assignment_id}/label"): ({"choice": "a"}, row(201, 403, 403, 201, 404)),
    ("DELETE", "/v1/assignments/{assignment_id}/label"): (None, row(404, 403, 403, 404, 404)),
    ("POST", "/v1/assignments/{assignment_id}/renew"): (None, row(200, 403, 403, 200, 404)),
    ("POST", "/v1/assignments/{assignment_id}/release"): (None, row(200, 403, 403, 200, 404)),
    ("POST", "/v1/assignments/{assignment_id}/skip"): ({"reason": "off-topic"}, row(200, 403, 403, 200, 404)),
    ("POST", "/v1/projects/{project_id}/exports"): ({"format": "jsonl"}, row(202, 202, 404, 403, 403)),
    ("GET", "/v1/exports/{export_id}"): (None, PROJECT_READ),
    ("GET", "/v1/exports/{export_id}/file"): (None, PROJECT_READ),
    ("GET", "/v1/exports/{export_id}/manifest"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/exports"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/exports/latest"): (None, PROJECT_READ),
    ("PUT", "/v1/projects/{project_id}/export-schedule"): ({"every_seconds": 3600}, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/export-schedule"): (None, PROJECT_READ),
    ("DELETE", "/v1/projects/{project_id}/export-schedule"): (None, row(204, 204, 404, 403, 403)),
    ("PUT", "/v1/projects/{project_id}/export-webhook"): ({"url": "https://hooks.example.com"}, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/export-webhook"): (None, PROJECT_READ),
    ("DELETE", "/v1/projects/{project_id}/export-webhook"): (None, row(204, 204, 404, 403, 403)),
    ("POST", "/v1/projects/{project_id}/export-webhook/rotate-secret"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/webhook-deliveries"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/responses/{response_id}/neighbors"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/neighbors/stats"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/reward-model"): (None, PROJECT_READ),
    ("POST", "/v1/projects/{project_id}/reward-model/refit"): (None, row(202, 202, 404, 403, 403)),
    ("GET", "/v1/projects/{project_id}/dashboard"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/dashboard/timeline"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/dashboard/similarity"): (None, PROJECT_READ),
    ("GET", "/v1/projects/{project_id}/suspects"): (None, row(200, 200, 404, 403, 403, reviewer=200)),
    # The world's pair has no label yet: callers that may requeue get the domain's 409.
    ("POST", "/v1/projects/{project_id}/pairs/{pair_id}/requeue"): (
        {"action": "label"},
        row(409, 409, 404, 403, 403),
    ),
    # Simulations belong to the principal that asked (here data_team_own); admins see all of them.
    ("POST", "/v1/simulations"): (SIMULATION_UPLOAD, row(202, 202, 202, 403, 403)),
    ("GET", "/v1/simulations"): (None, row(200, 200, 200, 403, 403)),
    ("GET", "/v1/simulations/{simulation_id}"): (None, PROJECT_READ),
    ("GET", "/v1/simulations/{simulation_id}/files/{file_name}"): (None, PROJECT_READ),
}


def test_the_matrix_covers_every_route() -> None:
    schema = create_app(admin_key=ADMIN_KEY, start_runner=False).openapi()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert routes == set(MATRIX)


# Answers that refuse a request before it changes anything: the cell after it reuses the world.
REFUSED = {401, 403, 404}


@dataclass
class Worlds:
    """The world the matrix's cells share: built once, and again only after a cell that may have changed it.

    A world took half a second to build and clean up, for each of the 612 cells. Read requests and refused
    writes leave it as it was (a refused write that changed it anyway would fail the cells after it); any
    other answer, or a cell that raised, has the next cell build a fresh one on emptied tables.
    """

    database: Any
    world: World | None = None

    def take(self) -> World:
        """The current world, or a fresh one; it counts as changed until give_back."""
        from app.db.session import get_database

        world, self.world = self.world, None
        if world is None:
            truncate_all(get_database())
            world = build_world(get_database())
        return world

    def give_back(self, world: World) -> None:
        self.world = world

    def clear(self) -> None:
        """Empty the tables of the shared world, for a test that builds worlds of its own."""
        from app.db.session import get_database

        truncate_all(get_database())
        self.world = None


@pytest.fixture(scope="module")
def worlds(database: Any) -> Iterator[Worlds]:
    from app.db.session import get_database

    yield Worlds(database)
    truncate_all(get_database())


@pytest.fixture(scope="module")
def matrix_app(worlds: Worlds) -> Iterator[Any]:
    """One app for every cell (building one and starting its lifespan cost 90 ms of CPU, requests 10-20)."""
    from fastapi.testclient import TestClient

    app = create_app(admin_key=ADMIN_KEY, start_runner=False)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as test_client:
        yield test_client


@pytest.fixture
def matrix_client(matrix_app: Any) -> Iterator[Any]:
    """The conftest client, without the db fixture's emptying of every table after each cell; each cell
    starts with no cookies (a session cookie would ride along) and fresh rate limits, as with a new app."""
    from app import background
    from app.auth.ratelimit import reset_limiter

    matrix_app.cookies.clear()
    reset_limiter()
    yield matrix_app
    background.get_runner().stop()
    reset_limiter()


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", list(MATRIX), ids=[f"{m} {p}" for m, p in MATRIX])
def test_status(
    route: tuple[str, str], caller: str, matrix_client: Any, worlds: Worlds, recorded_tasks: list[Any]
) -> None:
    world = worlds.take()
    method, template = route
    body, expected = MATRIX[route]
    path = template.format(
        key_id=world.ids["key_spare"],
        project_id=world.ids["project"],
        external_id=world.ids["prompt_external_id"],
        prompt_id=world.ids["prompt"],
        response_id=world.ids["response"],
        pair_id=world.ids["pair"],
        job_id=world.ids["job"],
        assignment_id=world.ids["assignment_a"],
        export_id=world.ids["export"],
        simulation_id=world.ids["simulation"],
        file_name="simulation.md",
        name="spare",
    )
    key = world.keys[caller]
    headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
    sent = {"data": body.fields, "files": body.files} if isinstance(body, Multipart) else {"json": body}
    response = matrix_client.request(method, path, headers=headers, **sent)
    if method == "GET" or response.status_code in REFUSED:
        worlds.give_back(world)
    assert response.status_code == expected[caller], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


LANE_ROUTES = [
    ("POST", "/v1/projects/{project_id}/queue/claim"),
    ("POST", "/v1/assignments/{assignment_id}/label"),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", LANE_ROUTES, ids=[f"{m} {p}" for m, p in LANE_ROUTES])
def test_the_one_statement_lane_refuses_as_the_unit_of_work_path_does(
    route: tuple[str, str],
    caller: str,
    worlds: Worlds,
    client: Any,
    db: Any,
    recorded_tasks: list[Any],
    override_settings: Any,
) -> None:
    """Claim and label take app/queue/fastlane.py's one statement for keys on Postgres; with it switched off
    they take the unit-of-work path. Both answer every caller with the same status and problem code."""
    worlds.clear()
    answers = []
    for lane in (True, False):
        override_settings(queue_fastlane=lane)
        world = build_world(db)
        method, template = route
        path = template.format(project_id=world.ids["project"], assignment_id=world.ids["assignment_a"])
        key = world.keys[caller]
        headers = {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}
        response = client.request(method, path, json=MATRIX[route][0], headers=headers)
        code = response.json().get("code") if response.status_code >= 400 else None
        answers.append((response.status_code, code))
        truncate_all(db)
    assert answers[0] == answers[1]
    assert answers[0][0] == MATRIX[route][1][caller]
