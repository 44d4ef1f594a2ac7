"""The production shape as processes of a test's own: Postgres and Redis on free loopback ports (started from
the installed binaries, data in a temporary folder, never the shared servers), `real-align api`, a Celery
worker and beat. Shared by tests/e2e/test_recovery.py and the chaos suite (tests/chaos/)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

from tests.e2e.pipeline import wait_for
from tests.live_server import free_port

__all__ = ["Api", "MissingBinary", "Postgres", "Redis", "Shape", "free_port", "stop_group"]


class MissingBinary(RuntimeError):
    """A server binary the test needs is not installed (the message names it and how to get it)."""


def stop_group(process: subprocess.Popen[bytes] | None, grace: float = 20) -> None:
    """SIGTERM a process started in a session of its own (and its children), SIGKILL after `grace` s."""
    if process is None or process.poll() is not None:
        return
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def _spawn(args: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    """A process in a session of its own, its output appended to `log` (or inherited when None)."""
    if log is None:
        return subprocess.Popen(args, env=env, start_new_session=True)
    with log.open("ab") as out:
        return subprocess.Popen(args, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


class Redis:
    """A redis-server of this test's own, on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.process: subprocess.Popen[bytes] | None = None
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingBinary("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: _pings(redis.Redis.from_url(self.url)), 10, "the test's Redis")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        raise MissingBinary(
            "no initdb under /usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)"
        )
    return Path(initdb).resolve().parent


class Postgres:
    """A Postgres cluster of this test's own: initdb in `workdir`, trust auth, a free loopback port.

    Postgres refuses to run as root; as root, the cluster belongs to (and runs as) the `postgres` user.
    `stop()` is `pg_ctl stop -m fast` (open transactions roll back, clients are cut), `start()` again keeps
    the data: the outage a database restart causes."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise MissingBinary(
                    "running as root, and there is no `postgres` user to run Postgres as"
                ) from exc
            self.user = "postgres"
        # Under /tmp itself: pytest's temporary folders are private to root, out of the postgres user's reach.
        self.workdir, self.port = Path(tempfile.mkdtemp(prefix="real-align-pg-")), free_port()
        self.data = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            check=True,
            user=self.user,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
        )

    def init(self) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.workdir}'",
            "max_connections": "300",
            "shared_buffers": "128MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t", "60")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def destroy(self) -> None:
        """Stop the cluster if it runs (immediate) and remove its folder."""
        if (self.data / "postmaster.pid").exists():
            with suppress(subprocess.CalledProcessError):
                self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


class Shape:
    """Worker and beat processes (each in a session of its own, so a SIGKILL takes its children too)."""

    def __init__(
        self, env: dict[str, str], workdir: Path, *, concurrency: int = 2, logs: bool = False
    ) -> None:
        self.env, self.workdir, self.concurrency, self.logs = env, workdir, concurrency, logs
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.workers = 0
        self.restarts = 0

    def _logfile(self, name: str) -> Path | None:
        return self.workdir / f"{name}.log" if self.logs else None

    def start_worker(self) -> None:
        self.workers += 1
        self.worker = _spawn(
            [sys.executable, "-m", "app.cli", "worker", "--queues", "embeddings,default"]
            + ["--concurrency", str(self.concurrency), "--name", f"recovery-{os.getpid()}-{self.workers}@%h"],
            self.env,
            self._logfile("worker"),
        )

    def keep_worker_up(self) -> None:
        """What a restart policy does (compose: restart: unless-stopped): a worker that exited is started
        again. Celery 5.7's worker can exit with "Unrecoverable error" when the broker connection drops while
        it acknowledges a task (an upstream bug); the outbox makes that restart lose nothing."""
        if self.worker is not None and self.worker.poll() is not None:
            self.restarts += 1
            self.start_worker()

    def kill_worker(self) -> None:
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)

    def start_beat(self) -> None:
        self.beat = _spawn(
            [sys.executable, "-m", "app.cli", "beat"],
            {**self.env, "REAL_BEAT_SCHEDULE_FILE": str(self.workdir / "beat-schedule")},
            self._logfile("beat"),
        )

    def stop(self) -> None:
        for process in (self.worker, self.beat):
            stop_group(process)


class Api:
    """`real-align api --workers N` on a free loopback port, as production runs it."""

    def __init__(self, env: dict[str, str], workdir: Path, workers: int = 2) -> None:
        self.env, self.workdir, self.workers = env, workdir, workers
        self.port = free_port()
        self.logfile = workdir / "api.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        with self.logfile.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "api", "--host", "127.0.0.1", "--port", str(self.port)]
                + ["--workers", str(self.workers)],
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}; see {self.logfile}")
            with suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    return bool(answer.status == 200)
            return False

        wait_for(healthy, timeout, f"the API on {self.url} (log: {self.logfile})")
        time.sleep(1.0)  # every worker process up, not only the first to answer

    def stop(self) -> None:
        stop_group(self.process)
