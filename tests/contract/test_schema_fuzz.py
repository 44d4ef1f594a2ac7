"""schemathesis against our OpenAPI schema, with a valid key of each role.

No 5xx, no response that breaks the schema, no undocumented status code or content type. Examples per
operation: REAL_FUZZ_EXAMPLES (25 in `make test`, 200 in `make fuzz`). Ingests are recorded, not embedded.

A second run (`hostile_schema`) takes each generated case and puts one value that the storage cannot take
in one place: a lone surrogate or a NUL in a string or an object key of the body, NUL in a path or query
string, an integer past int4 or int8 anywhere an integer goes. Each must be answered (a 4xx naming it),
never a 500 from Postgres or from encoding (issue 14).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
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
hostile_schema = schemathesis.openapi.from_asgi("/v1/openapi.json", app)

# Lone surrogates (valid JSON escapes, not UTF-8), NUL (Postgres text refuses it), integers past int4/int8.
HOSTILE_TEXT = ("a\ud800b", "\udfff", "a\x00b")
HOSTILE_URL_TEXT = ("a\x00b",)  # a client cannot put a lone surrogate in a URL: UTF-8 has none
HOSTILE_INTEGERS = (2**31, -(2**31) - 1, 2**63, 10**30)
Spot = tuple[tuple[Any, ...], str]  # (the path to a value or key, "text" / "key" / "int")


def _spots(value: Any, path: tuple[Any, ...] = (), *, keys: bool) -> Iterator[Spot]:
    if isinstance(value, str):
        yield path, "text"
    elif isinstance(value, int) and not isinstance(value, bool):
        yield path, "int"
    elif isinstance(value, dict):
        for key, item in value.items():
            if keys:
                yield (*path, key), "key"
            yield from _spots(item, (*path, key), keys=keys)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _spots(item, (*path, index), keys=keys)


def _replaced(value: Any, spot: Spot, new: Any) -> Any:
    path, kind = spot
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_replaced(item, (rest, kind), new) if i == head else item for i, item in enumerate(value)]
    if kind == "key" and not rest:
        return {(new if k == head else k): v for k, v in value.items()}
    return {k: (_replaced(v, (rest, kind), new) if k == head else v) for k, v in value.items()}


def _one_hostile_value(value: Any, texts: tuple[str, ...], *, keys: bool) -> st.SearchStrategy[Any]:
    """`value` with one string, integer (or key) in it replaced by a hostile one (as is if it has none)."""
    spots = list(_spots(value, keys=keys))
    if not spots:
        return st.just(value)
    return st.sampled_from(spots).flatmap(
        lambda spot: st.sampled_from(HOSTILE_INTEGERS if spot[1] == "int" else texts).map(
            lambda new: _replaced(value, spot, new)
        )
    )


@hostile_schema.hook("flatmap_body")
def _hostile_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    if not isinstance(body, dict | list):  # multipart uploads and the like
        return st.just(body)
    # Only JSON can carry a lone surrogate (as an escape); a form body could not be encoded to send.
    json_only = all(alternative.media_type == "application/json" for alternative in context.operation.body)
    return _one_hostile_value(body, HOSTILE_TEXT if json_only else HOSTILE_URL_TEXT, keys=True)


@hostile_schema.hook("flatmap_path_parameters")
def _hostile_path(context: Any, path_parameters: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _one_hostile_value(path_parameters, HOSTILE_URL_TEXT, keys=False)


@hostile_schema.hook("flatmap_query")
def _hostile_query(context: Any, query: dict[str, Any]) -> st.SearchStrategy[Any]:
    return _one_hostile_value(query, HOSTILE_URL_TEXT, keys=False)


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


@hostile_schema.parametrize()
@fuzz_settings
def test_hostile_values_as_admin(case: Any, world: Any) -> None:
    _run(case, world, "admin")


# An annotator's own key takes the queue's one-statement lane (app/queue/fastlane.py): its bodies too.
@hostile_schema.include(path_regex=r"/queue/claim$|^/v1/assignments/").parametrize()
@fuzz_settings
def test_hostile_values_on_the_annotator_lane(case: Any, world: Any) -> None:
    _run(case, world, "annotator_a")
