"""The client tests' server: `real-align api` in its own process on the test database, one per test module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, EXPORT_DIR, PG_URL, truncate_all
from tests.live_server import free_port


@pytest.fixture(scope="module")
def base_url(database: Any) -> Iterator[str]:
    """`real-align api` in its own process on the test database; with no broker, its in-process runner embeds
    and exports (a separate process, so its lazy imports never race the test's own)."""
    port = free_port()
    env = {
        **os.environ,
        "REAL_DATABASE_URL": PG_URL or "",
        "REAL_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY,
        "REAL_EXPORT_DIR": str(EXPORT_DIR),
        "REAL_LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "1",
    }
    env.pop("REAL_BROKER_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "the API process exited"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the API process did not start"
            time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        truncate_all(database)


@pytest.fixture(scope="module")
def admin(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        yield http
