"""The `real-align` command: serve (embedded default), api, worker, beat, migrate, keys."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
from pathlib import Path

ADMIN_KEY_FILE = Path(".real-align-admin-key")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _dev_admin_key() -> str:
    """REAL_BOOTSTRAP_ADMIN_KEY, or a key generated once and kept in ./.real-align-admin-key."""
    from app.config import get_settings

    configured = get_settings().bootstrap_admin_key
    if configured:
        return configured.get_secret_value()
    if ADMIN_KEY_FILE.exists():
        return ADMIN_KEY_FILE.read_text().strip()
    key = "real_dev_" + secrets.token_urlsafe(24)
    ADMIN_KEY_FILE.write_text(key + "\n")
    ADMIN_KEY_FILE.chmod(0o600)
    return key


def cmd_serve(args: argparse.Namespace) -> int:
    """Embedded default: SQLite + in-process tasks, optional demo data."""
    import uvicorn

    from app import migrate
    from app.config import get_settings
    from app.main import create_app

    settings = get_settings()
    _setup_logging(settings.log_level)
    migrate.upgrade()
    key = _dev_admin_key()
    app = create_app(admin_key=key)
    project_id = None
    if args.demo:
        from app.demo import seed_demo

        project, accepted = seed_demo()
        project_id = project.id
        print(f"Demo project {project.name!r} ({project.id}): {accepted} new prompts queued for embedding.")
    base = f"http://{args.host}:{args.port}"
    pid = project_id or "PROJECT_ID"
    print(
        f"""
real-align is starting on {base}
  database: {settings.database_url}; tasks: {"in-process" if settings.embedded_tasks else "Celery"}
Admin key: {key}

Next steps:
  export KEY={key}
  curl -s -H "Authorization: Bearer $KEY" {base}/v1/projects/{pid}/stats
  curl -s -X POST -H "Authorization: Bearer $KEY" {base}/v1/projects/{pid}/queue/claim
  curl -s -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       -d '{{"choice": "a"}}' {base}/v1/assignments/ASSIGNMENT_ID/label
  curl -s -X POST -H "Authorization: Bearer $KEY" {base}/v1/projects/{pid}/exports
  curl -s -H "Authorization: Bearer $KEY" {base}/v1/exports/EXPORT_ID/file
API docs: {base}/docs
""",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level.lower())
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Production API server (tasks go to Celery when REAL_BROKER_URL is set)."""
    import uvicorn

    from app.config import get_settings

    settings = get_settings()
    _setup_logging(settings.log_level)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker for the given queues."""
    from app.config import get_settings

    settings = get_settings()
    if not settings.broker_url:
        print(
            "REAL_BROKER_URL is not set: without a broker, tasks run inside `real-align serve`.",
            file=sys.stderr,
        )
        return 2
    from workers.celery_app import celery_app

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    celery_app.conf.preload_embedding_model = "embeddings" in queues
    argv = [
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(args.concurrency),
        "--loglevel",
        settings.log_level,
        "-n",
        args.name,
    ]
    celery_app.worker_main(argv)
    return 0


def cmd_beat(_args: argparse.Namespace) -> int:
    """Celery beat: sends the periodic tasks."""
    from app.config import get_settings

    if not get_settings().broker_url:
        print(
            "REAL_BROKER_URL is not set: without a broker, schedules run inside `real-align serve`.",
            file=sys.stderr,
        )
        return 2
    from workers.celery_app import celery_app

    celery_app.start(
        [
            "beat",
            "--loglevel",
            get_settings().log_level,
            "-s",
            os.environ.get("REAL_BEAT_SCHEDULE_FILE", "/tmp/real-align-beat-schedule"),
        ]
    )
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Apply database migrations."""
    from app import migrate
    from app.config import get_settings

    _setup_logging(get_settings().log_level)
    migrate.upgrade()
    print("database is at the newest schema revision")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Create, list or revoke API keys directly in the database (the way to the first admin key)."""
    import uuid
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from app.auth import service as auth
    from app.auth.context import Caller
    from app.auth.models import ApiKey, Principal, Role
    from app.config import get_settings
    from app.db.base import utcnow
    from app.db.session import get_database

    operator = Caller(name=f"cli:{os.environ.get('USER', 'operator')}", role=Role.ADMIN)
    console = Console(width=None if sys.stdout.isatty() else 240)
    db = get_database()
    if args.keys_command == "create":
        expires = datetime.fromisoformat(args.expires_at) if args.expires_at else None
        if expires is not None and expires.tzinfo is None:
            print("--expires-at needs a UTC offset, e.g. 2027-01-01T00:00:00+00:00", file=sys.stderr)
            return 2
        with db.session() as session:
            created = auth.create_key(
                session,
                get_settings(),
                operator,
                role=Role(args.role),
                name=args.name,
                projects=[uuid.UUID(p) for p in args.project] if args.project else None,
                expires_at=expires,
            )
        print(f"key id: {created.row.id}\nprincipal: {created.principal.name} ({created.principal.role})")
        print("secret (shown once, store it now):")
        print(created.key)
        return 0
    if args.keys_command == "revoke":
        with db.session() as session:
            auth.revoke_key(session, operator, uuid.UUID(args.key_id), utcnow())
        print(f"revoked {args.key_id}")
        return 0
    table = Table(
        "id", "prefix", "principal", "role", "projects", "created", "last used", "expires", "revoked"
    )
    with db.session() as session:
        for key, principal in session.execute(
            select(ApiKey, Principal).join(Principal, Principal.id == ApiKey.principal_id).order_by(ApiKey.id)
        ):
            table.add_row(
                str(key.id),
                key.prefix,
                principal.name,
                principal.role,
                ",".join(principal.projects or []) or "-",
                *(
                    f"{t:%Y-%m-%d %H:%M}" if t else "-"
                    for t in (key.created_at, key.last_used_at, key.expires_at, key.revoked_at)
                ),
            )
    console.print(table)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="real-align", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="embedded default: SQLite + in-process tasks")
    serve.add_argument("--demo", action="store_true", help="load the AlpacaEval demo project")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)
    api = sub.add_parser("api", help="production API server")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    api.set_defaults(func=cmd_api)
    worker = sub.add_parser("worker", help="Celery worker")
    worker.add_argument("--queues", default="embeddings,default")
    worker.add_argument("--concurrency", type=int, default=1)
    worker.add_argument("--name", default="real-align@%h")
    worker.set_defaults(func=cmd_worker)
    beat = sub.add_parser("beat", help="Celery beat (schedules)")
    beat.set_defaults(func=cmd_beat)
    keys = sub.add_parser("keys", help="manage API keys (in the database; for operators)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key (and its principal if the name is new)")
    create.add_argument("--role", required=True, choices=["admin", "data_team", "annotator"])
    create.add_argument("--name", required=True)
    create.add_argument("--project", action="append", help="a project id the principal may use (repeatable)")
    create.add_argument("--expires-at", help="ISO 8601 with offset")
    keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key now")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except Exception as exc:
        from pydantic import ValidationError

        from app.errors import DomainError

        if isinstance(exc, ValidationError):
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, DomainError):
            print(f"error: {exc.detail or exc.title}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
