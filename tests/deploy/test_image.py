"""The image's wheel: built from exactly the files the Dockerfile copies, installed into a fresh venv, every
console entry point run from there (no Docker engine here: the Dockerfile's COPY lines are followed by hand).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import uuid
import venv
import zipfile
from collections.abc import Iterator
from configparser import ConfigParser
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
DEPENDENCIES = sysconfig.get_paths()["purelib"]  # the test venv's site-packages: the wheel's dependencies


def copied_paths(dockerfile: str, stage: str) -> list[str]:
    """The build-context paths a stage's COPY lines take (not those copied from another stage)."""
    stages = re.split(r"^FROM\s+", dockerfile, flags=re.MULTILINE)
    (body,) = [s for s in stages if re.match(rf"\S+\s+AS\s+{stage}\b", s, flags=re.IGNORECASE)]
    paths: list[str] = []
    for line in body.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            paths += [w for w in words[1:-1] if not w.startswith("--")]
    return paths


def place(paths: list[str], target: Path) -> None:
    target.mkdir(parents=True)
    for path in paths:
        source = ROOT / path.rstrip("/")
        if source.is_dir():
            shutil.copytree(source, target / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / source.name)


@dataclass
class Installed:
    wheel: Path
    bin: Path
    workdir: Path

    def run(self, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "PYTHONPATH": DEPENDENCIES,
            "HOME": str(self.workdir),
            "HF_HUB_OFFLINE": "1",
            **(env or {}),
        }
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=self.workdir,
            env=environment,
            capture_output=True,
            text=True,
            timeout=180,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The Dockerfile's build stage (wheel from its COPY lines) and runtime stage (/app) in a temp folder."""
    base = tmp_path_factory.mktemp("image")
    dockerfile = (ROOT / "Dockerfile").read_text()
    place(copied_paths(dockerfile, "build"), base / "src")
    place(copied_paths(dockerfile, "runtime"), base / "app")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    # Offline: no build isolation, so setuptools comes from this venv instead of a download.
    subprocess.run(
        [
            *pip,
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            base / "dist",
            "./src",
        ],
        cwd=base,
        check=True,
        timeout=300,
    )
    (wheel,) = (base / "dist").glob("*.whl")
    venv.create(base / "venv", with_pip=False)
    target = ["--python", str(base / "venv" / "bin" / "python")]
    subprocess.run(
        [*pip, *target, "install", "--no-deps", "--no-index", "-q", wheel], check=True, timeout=300
    )
    return Installed(wheel, base / "venv" / "bin", base / "app")


def test_the_wheel_holds_every_package_of_the_package_list(installed: Installed) -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    expected = {p.replace(".", "/") for p in find_packages(str(ROOT), include=include)}
    with zipfile.ZipFile(installed.wheel) as wheel:
        shipped = {str(Path(name).parent) for name in wheel.namelist() if name.endswith("/__init__.py")}
    assert expected <= shipped, sorted(expected - shipped)
    assert {"app", "workers", "real_align"} <= shipped


def console_scripts(wheel_path: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel_path) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
        parser = ConfigParser()
        parser.read_string(wheel.read(name).decode())
    return dict(parser["console_scripts"])


def test_every_console_entry_point_imports_from_the_installed_wheel(installed: Installed) -> None:
    scripts = console_scripts(installed.wheel)
    assert scripts
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        code = (
            f"import {module} as m, app, real_align, workers; "
            f"assert callable(m.{function}); print(app.__file__, real_align.__file__, workers.__file__)"
        )
        done = installed.run("python", "-c", code)
        assert done.returncode == 0, done.stderr
        for path in done.stdout.split():
            assert path.startswith(str(installed.bin.parent)), path  # the wheel's copy, not the checkout
        done = installed.run(name, "--help")
        assert done.returncode == 0, done.stderr
        assert "export" in done.stdout
        assert "ingest" in done.stdout


def test_export_and_ingest_run_in_the_image(installed: Installed, tmp_path: Path) -> None:
    """They reach for the (absent) API and say so in one line: the client package is there."""
    project = str(uuid.uuid4())
    records = tmp_path / "prompts.jsonl"
    records.write_text('{"external_id": "p1", "prompt": "Hi", "responses": ["a", "b"]}\n')
    unreachable = ["--url", "http://127.0.0.1:9", "--api-key", "real_" + "0" * 38]
    for argv in (
        ("real-align", "export", project, "--no-wait", *unreachable),
        ("real-align", "ingest", project, str(records), "--quiet", *unreachable),
    ):
        done = installed.run(*argv)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith("error:"), done.stderr
        assert done.stderr.count("\n") == 1, done.stderr


@pytest.fixture
def scratch_database(database: Any) -> Iterator[str]:
    """An empty Postgres database beside the test one, dropped after the test."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database.settings.database_url)
    name = f"{url.database}_image"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_runs_from_the_image_working_directory(installed: Installed, scratch_database: str) -> None:
    """`real-align migrate` in /app: alembic.ini and migrations/ there, the code (and the frozen SQL
    functions' loader) in the wheel."""
    done = installed.run("real-align", "migrate", env={"REAL_DATABASE_URL": scratch_database})
    assert done.returncode == 0, done.stderr[-3000:]
    import psycopg

    dsn = scratch_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        functions = {
            r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'real_queue%'")
        }
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"real_queue_claim", "real_queue_label"} <= functions
    assert {"project", "prompt", "label", "alembic_version"} <= tables
    assert not os.path.exists(installed.workdir / "real-align.db")
