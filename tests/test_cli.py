"""The `real-align` command run as a person would: from another folder, by the console script."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "real-align"


def run_cli(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REAL_")}
    return subprocess.run(
        [str(SCRIPT), *argv],
        cwd=cwd,
        env={**environment, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error:"), done.stderr
    return done.stderr


@pytest.mark.parametrize(
    "argv", [("keys", "list"), ("keys", "create", "--role", "admin", "--name", "ops"), ("api",)]
)
def test_a_database_command_from_another_folder_says_where_it_looked(
    tmp_path: Path, argv: tuple[str]
) -> None:
    done = run_cli(*argv, cwd=tmp_path)
    assert done.returncode == 2
    line = one_error_line(done)
    assert f"no database at {tmp_path.resolve() / 'real-align.db'}" in line
    assert list(tmp_path.iterdir()) == []  # no stray empty real-align.db (nor its -wal, -shm, .lock)


def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    done = run_cli("keys", "list", cwd=tmp_path, REAL_DATABASE_URL="sqlite:///empty.db")
    assert done.returncode == 1
    assert "no such table" in one_error_line(done)


def test_a_missing_input_file_is_one_line(tmp_path: Path) -> None:
    argv = ("ingest", "00000000-0000-0000-0000-000000000000", "nowhere.jsonl", "--api-key", "k", "--quiet")
    done = run_cli(*argv, "--url", "http://127.0.0.1:9", cwd=tmp_path)
    assert done.returncode == 1
    assert "nowhere.jsonl" in one_error_line(done)


def test_make_run_takes_the_port() -> None:
    done = subprocess.run(
        ["make", "-n", "run", "PORT=8123"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    (serve,) = [line for line in done.stdout.splitlines() if "real-align serve" in line]
    assert "--port 8123" in serve


def test_the_readme_curl_lines_go_through_one_url() -> None:
    readme = (ROOT / "README.md").read_text()
    assert re.search(r"^export URL=http://127\.0\.0\.1:8000\b", readme, flags=re.MULTILINE)
    commands = readme.replace("\\\n", " ").splitlines()  # a backslash-continued command as one line
    curls = [line for line in commands if "curl " in line]
    assert curls
    for line in curls:
        assert "$URL/" in line, line
        assert not re.search(r"(localhost|127\.0\.0\.1):\d+", line), line
