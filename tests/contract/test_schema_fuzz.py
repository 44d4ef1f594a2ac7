"""schemathesis against our OpenAPI schema, with a valid key of each role.

No 5xx, no response that breaks the schema, no undocumented status code or content type. Examples per
operation: REAL_FUZZ_EXAMPLES (25 in `make test`, 200 in `make fuzz`). Ingests are recorded, not embedded.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.main import create_app
from tests.auth.world import build_world
from tests.conftest import ADMIN_KEY

EXAMPLES = int(os.environ.get("REAL_FUZZ_EXAMPLES", "25"))
# Our rules are stricter than JSON Schema can say (at least two non-empty responses, an expiry in the future,
# a non-blank prompt), so schema-valid bodies may rightly get 422; every other check stays on.
EXCLUDED = [positive_data_acceptance]

app = create_app(admin_key=ADMIN_KEY, start_runner=False)
schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)

fuzz_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@pytest.fixture
def world(db: Any, recorded_tasks: list[Any], override_settings: Any) -> Any:
    # High limits: the fuzzer sends far more than an annotator would in a minute.
    override_settings(rate_limit_per_minute=10**9, auth_failures_per_minute=10**9)
    return build_world(db)


def _run(case: Any, world: Any, role: str) -> None:
    meta = case.meta
    # Point valid cases at a real project, so bodies are fuzzed past the 404; negative cases keep theirs.
    if "project_id" in (case.path_parameters or {}) and not (
        meta and meta.is_negative_at(ParameterLocation.PATH)
    ):
        case.path_parameters["project_id"] = str(world.ids["project"])
    # A case that mutates headers (e.g. drops Authorization) must be sent as generated.
    negative_headers = bool(meta and meta.is_negative_at(ParameterLocation.HEADER))
    headers = None if negative_headers else {"Authorization": f"Bearer {world.keys[role]}"}
    case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)


@schema.parametrize()
@fuzz_settings
def test_as_admin(case: Any, world: Any) -> None:
    _run(case, world, "admin")


@schema.parametrize()
@fuzz_settings
def test_as_data_team(case: Any, world: Any) -> None:
    _run(case, world, "data_team_own")


@schema.parametrize()
@fuzz_settings
def test_as_annotator(case: Any, world: Any) -> None:
    _run(case, world, "annotator_a")
