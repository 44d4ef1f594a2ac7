"""The chaos suite's stack: its own Postgres and Redis (free loopback ports, temporary folders, nothing on
the shared servers), migrated with `real-align migrate`, then `real-align api --workers 2`, a Celery worker
and beat as processes, production settings (REAL_ENV=prod). One stack for the whole run, scenarios in order.

Binaries that are not installed skip the suite on a developer's machine and fail it under CI=true, where a
skipped chaos run would pass while proving nothing."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import FIGURES, Stack, null_pool_engine
from tests.processes import Api, MissingBinary, Postgres, Redis, Shape


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def stack_env(database_url: str, broker_url: str, workdir: Path, admin_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REAL_")}
    (workdir / "metrics").mkdir()
    env.update(
        REAL_ENV="prod",
        REAL_SECRET_KEY=secrets.token_urlsafe(48),
        REAL_BOOTSTRAP_ADMIN_KEY=admin_key,
        REAL_DATABASE_URL=database_url,
        REAL_BROKER_URL=broker_url,
        REAL_EXPORT_DIR=str(workdir / "exports"),
        REAL_INDEX_DIR=str(workdir / "indexes"),
        # Only the task outbox may bring lost work back: the reconciler (120 s) is off.
        REAL_RECONCILE_AFTER_SECONDS="86400",
        # Embedding tasks of 8 prompts (64 responses): several per ingest, so a kill lands mid-work.
        REAL_EMBED_CHUNK_PROMPTS="8",
        REAL_LOG_LEVEL="INFO",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "metrics"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    return env


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    workdir = Path(tempfile.mkdtemp(prefix="real-align-chaos-"))
    try:
        redis = Redis(workdir)
        postgres = Postgres()  # last: it makes its folder once the binaries are found
    except MissingBinary as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        if _in_ci():
            pytest.fail(f"the chaos suite cannot run under CI: {exc}", pytrace=False)
        pytest.skip(f"the chaos suite needs Postgres and Redis binaries: {exc}")
    admin_key = "real_chaos_admin_" + secrets.token_urlsafe(24)
    api: Api | None = None
    shape: Shape | None = None
    try:
        postgres.init()
        postgres.start()
        database_url = postgres.create_database("chaos")
        redis.start()
        env = stack_env(database_url, redis.url, workdir, admin_key)
        subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"],
            env=env,
            cwd=workdir,
            check=True,
            capture_output=True,
        )
        shape = Shape(env, workdir, logs=True)
        shape.start_worker()  # first: it loads the embedding model while the rest starts
        shape.start_beat()
        api = Api(env, workdir, workers=2)
        api.start()
        yield Stack(
            workdir=workdir,
            postgres=postgres,
            redis=redis,
            api=api,
            shape=shape,
            database_url=database_url,
            admin_key=admin_key,
            engine=null_pool_engine(database_url),
        )
    finally:
        if shape is not None:
            shape.stop()
        if api is not None:
            api.stop()
        redis.stop()
        postgres.destroy()
        if os.environ.get("REAL_CHAOS_KEEP") != "1":  # REAL_CHAOS_KEEP=1 keeps the logs for a post-mortem
            shutil.rmtree(workdir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("chaos figures")
        for scenario, line in FIGURES:
            terminalreporter.write_line(f"{scenario}: {line}")
