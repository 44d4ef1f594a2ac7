"""docker-compose.yml gives what the suite expects (no Docker engine here: the file is read and checked).

The README says `docker compose up -d postgres redis` starts what `make test` needs; tests/services.py holds
the URLs the suite tries by default. These tests hold the two together.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

from tests.services import DEFAULT_PG_URLS, DEFAULT_REDIS_URL, START_HINT

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def published(service: dict[str, Any]) -> set[tuple[str, int, int]]:
    """(host address, host port, container port) of a service's `ports`."""
    found = set()
    for entry in service.get("ports", []):
        *host, container = str(entry).split(":")
        address = host[0] if len(host) == 2 else "0.0.0.0"
        found.add((address, int(host[-1]), int(container)))
    return found


def test_the_readme_command_is_the_hint_and_names_compose_services(compose: dict[str, Any]) -> None:
    assert START_HINT in (ROOT / "README.md").read_text()
    *_, services = START_HINT.split(" -d ")
    for name in services.split():
        assert name in compose["services"], name


def test_postgres_is_where_and_who_the_tests_look_for(compose: dict[str, Any]) -> None:
    url = make_url(DEFAULT_PG_URLS[0])
    postgres = compose["services"]["postgres"]
    environment = postgres["environment"]
    assert (url.host, url.port, 5432) in published(postgres)
    assert environment["POSTGRES_USER"] == url.username
    assert environment["POSTGRES_DB"] == url.database
    if url.password is None:  # the suite sends none: the server must not ask for one
        assert environment.get("POSTGRES_HOST_AUTH_METHOD") == "trust"
    else:
        assert environment["POSTGRES_PASSWORD"] == url.password


def test_redis_is_where_the_tests_look_for_it(compose: dict[str, Any]) -> None:
    url = make_url(DEFAULT_REDIS_URL)
    redis = compose["services"]["redis"]
    assert (url.host, url.port, 6379) in published(redis)
    command = redis.get("command", [])
    databases = int(command[command.index("--databases") + 1]) if "--databases" in command else 16
    assert int(url.database or 0) < databases


def test_the_stack_role_and_database_are_created_on_first_start(compose: dict[str, Any]) -> None:
    """The app services' REAL_DATABASE_URL names a role and a database that an init script makes."""
    url = make_url(compose["x-env"]["REAL_DATABASE_URL"])
    scripts = ""
    for volume in compose["services"]["postgres"]["volumes"]:
        source, _, target = volume.partition(":")
        if target.startswith("/docker-entrypoint-initdb.d"):
            scripts += "".join(p.read_text() for p in sorted((ROOT / source).glob("*.sql")))
    assert re.search(rf"CREATE ROLE {url.username} LOGIN PASSWORD '{url.password}'", scripts), scripts
    assert re.search(rf"CREATE DATABASE {url.database} OWNER {url.username}", scripts), scripts


def test_every_dependency_names_a_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)


def test_the_api_healthcheck_asks_readyz(compose: dict[str, Any]) -> None:
    """Ready means the database and the broker answer (app/health.py), not only that the process runs."""
    check = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    assert "/readyz" in check
