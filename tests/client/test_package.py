"""The real_align package on its own: light to import; how it retries (against a tiny real HTTP server)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from real_align import Client, RateLimitedError, ServerError

PACKAGE = Path(__file__).resolve().parents[2] / "real_align"
HEAVY = ("torch", "sentence_transformers", "sqlalchemy", "app", "datasets", "pandas", "pyarrow", "numpy")


def test_importing_real_align_leaves_heavy_modules_out() -> None:
    code = (
        "import json, sys; import real_align; from real_align import Client; "
        "Client('http://127.0.0.1:9', 'k').close(); print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, cwd="/"
    )
    loaded = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert "real_align" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_no_module_of_the_package_imports_the_server() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in {"app", "workers", "sqlalchemy", "torch"}, (path.name, name)


class _Script(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the server's script."""

    def _answer(self) -> None:
        server = self.server
        assert isinstance(server, _ScriptedServer)
        server.seen.append((self.command, self.path))
        empty_page: dict[str, object] = {"items": [], "next_cursor": None}
        status, headers, body = server.script.pop(0) if server.script else (200, {}, empty_page)
        data = json.dumps(body).encode()
        self.send_response(status)
        content_type = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        return None


class _ScriptedServer(ThreadingHTTPServer):
    script: list[tuple[int, dict[str, str], dict[str, object]]]
    seen: list[tuple[str, str]]


@pytest.fixture
def scripted() -> Iterator[_ScriptedServer]:
    server = _ScriptedServer(("127.0.0.1", 0), _Script)
    server.script, server.seen = [], []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _problem(status: int, code: str) -> dict[str, object]:
    return {"type": f"urn:real-align:problem:{code}", "title": code, "status": status, "code": code}


def _url(server: _ScriptedServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_retry_after_is_honoured_on_503(scripted: _ScriptedServer) -> None:
    scripted.script = [(503, {"Retry-After": "1"}, _problem(503, "unavailable"))]
    with Client(_url(scripted), "k", retries=2) as client:
        started = time.monotonic()
        projects = client.list_projects()
        elapsed = time.monotonic() - started
    assert projects == []
    assert [path for _, path in scripted.seen] == ["/v1/projects?limit=200"] * 2
    assert elapsed >= 1.0


def test_a_create_is_not_sent_again_after_a_500(scripted: _ScriptedServer) -> None:
    scripted.script = [(500, {}, _problem(500, "internal"))]
    with Client(_url(scripted), "k", retries=3) as client, pytest.raises(ServerError) as caught:
        client.create_project("p")
    assert caught.value.status == 500
    assert scripted.seen == [("POST", "/v1/projects")]


def test_429_after_the_retries_carries_retry_after(scripted: _ScriptedServer) -> None:
    scripted.script = [(429, {"Retry-After": "0"}, _problem(429, "rate_limited"))] * 2
    with Client(_url(scripted) + "/v1/", "k", retries=1) as client, pytest.raises(RateLimitedError) as caught:
        client.get_stats("p")
    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, "rate_limited", 0.0)
    assert scripted.seen == [("GET", "/v1/projects/p/stats")] * 2


def test_batches_split_on_count_and_on_bytes() -> None:
    from real_align.records import batches

    items = [{"external_id": str(n), "prompt": "p" * 100, "responses": ["a", "b"]} for n in range(7)]
    by_count = [len(batch) for batch, _ in batches(items, max_items=3, max_bytes=1 << 20)]
    assert by_count == [3, 3, 1]
    one = len(json.dumps(items[0], separators=(",", ":")))
    by_bytes = list(batches(items, max_items=100, max_bytes=2 * one + 40))
    assert [len(batch) for batch, _ in by_bytes] == [2, 2, 2, 1]
    for batch, body in by_bytes:
        assert len(body) <= 2 * one + 40
        assert json.loads(body) == {"items": batch}
    alone = list(batches(items[:2], max_items=10, max_bytes=10))  # larger than the cap: sent one by one
    assert [len(batch) for batch, _ in alone] == [1, 1]


def test_rows_from_columnar_values_become_plain_json() -> None:
    import numpy as np

    from real_align.records import Columns, to_item

    row = {
        "prompt": "Q?",
        "responses": np.array([{"text": "a", "model": None}, {"text": "b", "model": "m"}], dtype=object),
        "external_id": float("nan"),
        "metadata": {"score": np.float32(0.5), "tags": np.array(["x"])},
    }
    item = to_item(row, Columns())
    assert item["responses"] == [{"text": "a"}, {"text": "b", "model": "m"}]
    assert item["external_id"].startswith("sha256:")
    assert item["metadata"] == {"score": 0.5, "tags": ["x"]}
    json.dumps(item)
