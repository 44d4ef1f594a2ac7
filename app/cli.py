"""The `real-align` command: serve (embedded default), api, worker, beat, migrate, keys; export, ingest;
simulate (the offline budget simulator)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.config import Settings

ADMIN_KEY_FILE = Path(".real-align-admin-key")


def _missing_database() -> str | None:
    """One line saying why a command that reads the database cannot start, or None when it can.

    SQLite (the embedded default, ``sqlite:///./real-align.db``) resolves its file against the working
    directory, and connecting creates an empty one: run from another folder, a command would make a stray
    empty database and fail on its first query. `serve` and `migrate` create and migrate it; others need it.
    """
    from sqlalchemy.engine import make_url

    from app.config import get_settings

    settings = get_settings()
    database = make_url(settings.database_url).database if settings.is_sqlite else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    if path.exists():
        return None
    return (
        f"error: no database at {path} (REAL_DATABASE_URL={settings.database_url}, relative to the working "
        "directory): run this in the folder where `real-align serve` made it, set REAL_DATABASE_URL, or "
        "create one with `real-align migrate`"
    )


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


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's X-Forwarded-* handling: believed only from REAL_TRUSTED_PROXIES (none by default), so a
    client cannot choose the address its failed authentications are counted against; behind trusted
    proxies the client is the rightmost hop that is not one of them (uvicorn's forwarded_allow_ips)."""
    trusted = settings.trusted_proxies
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


def cmd_serve(args: argparse.Namespace) -> int:
    """Embedded default: SQLite + in-process tasks, optional demo data."""
    import uvicorn

    from app import migrate
    from app.config import get_settings
    from app.main import create_app

    settings = get_settings()
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
  export URL={base} KEY={key}
  curl -s -H "Authorization: Bearer $KEY" $URL/v1/projects/{pid}/stats
  curl -s -X POST -H "Authorization: Bearer $KEY" $URL/v1/projects/{pid}/queue/claim
  curl -s -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       -d '{{"choice": "a"}}' $URL/v1/assignments/ASSIGNMENT_ID/label
  curl -s -X POST -H "Authorization: Bearer $KEY" $URL/v1/projects/{pid}/exports
  curl -s -H "Authorization: Bearer $KEY" $URL/v1/exports/EXPORT_ID/file
API docs: {base}/docs
""",
        flush=True,
    )
    # log_config=None: uvicorn's loggers go through app/logging.py's handler (request id on access lines).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        log_config=None,
        **proxy_options(settings),
    )
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """Production API server (tasks go to Celery when REAL_BROKER_URL is set)."""
    import uvicorn

    from app.config import get_settings

    settings = get_settings()
    if missing := _missing_database():
        print(missing, file=sys.stderr)
        return 2
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        log_config=None,  # each worker process's create_app configures logging (app/logging.py)
        **proxy_options(settings),
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
    """Celery beat: sends the periodic tasks, and relays the task outbox (workers/relay.py)."""
    from app.config import get_settings

    if not get_settings().broker_url:
        print(
            "REAL_BROKER_URL is not set: without a broker, schedules run inside `real-align serve`.",
            file=sys.stderr,
        )
        return 2
    from workers.celery_app import celery_app
    from workers.relay import start_relay_thread

    start_relay_thread()
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

    if missing := _missing_database():
        print(missing, file=sys.stderr)
        return 2
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
                reviewer=args.reviewer,
            )
        principal = created.principal
        flag = ", reviewer" if principal.reviewer else ""
        print(f"key id: {created.row.id}\nprincipal: {principal.name} ({principal.role}{flag})")
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


def cmd_export(args: argparse.Namespace) -> int:
    """Start a DPO export through the HTTP API, wait for it and download the file (the real_align client)."""
    from real_align import Client, RealAlignError

    if not args.api_key:
        print("an API key is needed: --api-key or REAL_API_KEY", file=sys.stderr)
        return 2
    if args.wait and not args.out:
        print("--out FILE is needed (or --no-wait to only start the export)", file=sys.stderr)
        return 2
    if not args.wait and args.out:
        print("--out downloads the file, which needs --wait", file=sys.stderr)
        return 2
    with Client(args.url, args.api_key) as client:
        try:
            run = client.export(
                args.project_id,
                format=args.format,
                style=args.style,
                compression=args.compression,
                since=args.since,
            )
            if not args.wait:
                print(f"export {run.id}: {run.status}")
                return 0
            run = client.wait_for_export(run.id, timeout=args.timeout, progress=not args.quiet)
            path = client.download_export(run.id, args.out, progress=not args.quiet)
        except RealAlignError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"export {run.id}: {run.rows} rows, sha256 {run.sha256} -> {path}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    """Send a JSONL file of prompts ({external_id?, prompt, responses, metadata?} a line, gzipped or not)
    through the API's streamed upload, with a progress bar; refused lines are listed with their numbers."""
    from real_align import Client, RealAlignError

    if not args.api_key:
        print("an API key is needed: --api-key or REAL_API_KEY", file=sys.stderr)
        return 2
    if not Path(args.file).is_file():
        print(f"error: no file {args.file}", file=sys.stderr)
        return 1
    with Client(args.url, args.api_key) as client:
        try:
            result = client.upload(args.project_id, args.file, progress=not args.quiet)
            print(
                f"accepted {result.accepted}, duplicates {result.duplicates}, refused {result.errors} "
                f"(of {result.lines} lines); job {result.job_id}"
            )
            if result.error:
                print(f"error: {result.error}", file=sys.stderr)
            shown = 0
            for error in client.upload_errors(result.job_id) if result.errors else ():
                if shown == args.show_errors:
                    print(f"  … and {result.errors - shown} more: GET /v1/jobs/{result.job_id}/errors")
                    break
                where = f" {error.field}:" if error.field else ""
                print(f"  line {error.line}{f' ({error.external_id})' if error.external_id else ''}:{where} "
                      f"{error.detail}")  # fmt: skip
                shown += 1
            if args.wait:
                quiet = args.quiet
                stats = client.wait_until_ready(args.project_id, timeout=args.timeout, progress=not quiet)
                print(f"ready: {stats.embedded}/{stats.responses} responses embedded, {stats.pairs} pairs")
        except RealAlignError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 1 if result.errors or result.error else 0


def _number_list(text: str) -> tuple[int, ...]:
    """Comma-separated label counts ("50,100,200") as a sorted tuple; anything else is a usage error."""
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated label counts, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive label counts, got {text!r}")
    return tuple(values)


def _threshold(text: str) -> float | None:
    """A cosine, or none/off for no near-duplicate collapse."""
    return None if text.lower() in ("none", "off") else float(text)


def cmd_simulate(args: argparse.Namespace) -> int:
    """Offline budget simulator: every strategy spends the same label budget against simulated annotators."""
    import hashlib
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from app.config import get_settings
    from app.simulation import engine, pipeline, report
    from app.simulation.inputs import InputError, load
    from app.simulation.vectors import CacheMismatch, embed

    started = time.perf_counter()
    strategies = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    try:
        data = load(args.data)
        noise = pipeline.noise_model(
            args.noise,
            epsilon=args.epsilon,
            epsilon_min=args.epsilon_min,
            epsilon_max=args.epsilon_max,
            similarity_low=args.similarity_low,
            similarity_high=args.similarity_high,
        )
        config = engine.Config(
            budgets=args.budget,
            strategies=strategies,
            repeats=args.repeats,
            noise=noise,
            seed=args.seed,
            held_out=args.held_out,
            round_size=args.round,
            every=args.every,
            l2=args.l2,
            near_duplicate_threshold=args.near_duplicate_threshold,
            uncertainty_weight=args.uncertainty_weight,
            novelty_weight=args.novelty_weight,
        )
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model = args.embedding_model or get_settings().embedding_model
    out = Path(args.out)
    cache = Path(args.cache) if args.cache else out / "embeddings.npz"

    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        task = progress.add_task("embedding (cached texts skipped)", total=None)
        try:
            vectors = embed(
                data.texts(),
                model,
                cache,
                pipeline.encoder_for(model),
                lambda done, todo: progress.update(task, completed=done, total=todo),
            )
        except CacheMismatch as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        progress.update(task, description="simulating (strategy x repeat)", completed=0, total=None)
        try:
            pool, result = pipeline.simulate(
                data, vectors, config, lambda done, total: progress.update(task, completed=done, total=total)
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    digest = hashlib.sha256(Path(args.data).read_bytes()).hexdigest()
    summary = pipeline.summarise(data, pool, result, pipeline.Source(Path(args.data).name, digest, model))
    paths = pipeline.write(summary, out)
    table = Table(
        "strategy", *(f"accuracy @{b}" for b in config.budgets), "labels to random's full-budget accuracy"
    )
    for name, entry in summary["strategies"].items():
        index = [summary["checkpoints"].index(b) for b in config.budgets]
        need = entry.get("labels_to_target")
        labels = "-" if need is None else report.labels_cell(need)
        table.add_row(name, *(f"{entry['accuracy']['mean'][i]:.3f}" for i in index), labels)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"{time.perf_counter() - started:.1f} s")
    return 0


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=os.environ.get("REAL_URL", "http://127.0.0.1:8000"), help="env REAL_URL"
    )
    parser.add_argument("--api-key", default=os.environ.get("REAL_API_KEY"), help="env REAL_API_KEY")
    parser.add_argument("--timeout", type=float, default=None, help="seconds to wait at most")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    from app.active.acquisition import NOVELTY_WEIGHT, UNCERTAINTY_WEIGHT
    from app.simulation.annotators import ConstantNoise, SimilarityNoise

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
    create.add_argument(
        "--reviewer",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="an annotator that may also work its projects' review queue (--no-reviewer clears it)",
    )
    keys_sub.add_parser("list", help="list keys")
    revoke = keys_sub.add_parser("revoke", help="revoke a key now")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)
    export = sub.add_parser("export", help="export a project's DPO data through the API (client)")
    export.add_argument("project_id")
    export.add_argument("--format", choices=["jsonl", "parquet"], help="server default: jsonl")
    export.add_argument("--style", choices=["standard", "conversational"], help="server default: standard")
    export.add_argument("--compression", choices=["none", "gzip"], help="server default: none")
    export.add_argument("--since", metavar="EXPORT_ID", help="only pairs completed after this export")
    export.add_argument("--out", help="file (or existing folder) to download the export to")
    export.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True)
    _add_client_options(export)
    export.set_defaults(func=cmd_export)
    ingest = sub.add_parser("ingest", help="upload a JSONL file of prompts through the API (client)")
    ingest.add_argument("project_id")
    ingest.add_argument(
        "file", help="JSONL (or .jsonl.gz): {external_id?, prompt, responses, metadata?} per line"
    )
    ingest.add_argument("--show-errors", type=int, default=20, help="refused lines to list (default 20)")
    ingest.add_argument("--wait", action=argparse.BooleanOptionalAction, default=False, help="until embedded")
    _add_client_options(ingest)
    ingest.set_defaults(func=cmd_ingest)
    simulate = sub.add_parser(
        "simulate",
        help="offline budget simulator: which strategy saves labels (docs/simulation.md)",
        description="Spend label budgets with each pair-selection strategy against simulated annotators and "
        "report the held-out reward-model accuracy, the label error rate and the labels needed to reach "
        "random's full-budget accuracy. Input formats and parameters: docs/simulation.md.",
    )
    simulate.add_argument(
        "--data", required=True, help="JSONL(.gz): format 1 (scored responses) or 2 (pairwise)"
    )
    simulate.add_argument(
        "--budget", required=True, type=_number_list, help="label counts to report, e.g. 50,100,200,400"
    )
    simulate.add_argument("--strategies", default="random,dissimilar,similar,centroid,active")
    simulate.add_argument("--repeats", type=int, default=5)
    simulate.add_argument("--seed", type=int, default=0)
    simulate.add_argument("--noise", choices=["constant", "similarity"], default="constant")
    constant, similar = ConstantNoise(), SimilarityNoise()
    for flag, default, what in (
        ("--epsilon", constant.epsilon, "constant: the flip probability"),
        ("--epsilon-min", similar.epsilon_min, "similarity: the flip probability up to --similarity-low"),
        ("--epsilon-max", similar.epsilon_max, "similarity: the flip probability from --similarity-high"),
    ):
        simulate.add_argument(flag, type=float, default=default, help=f"{what} (default {default})")
    for flag, verb, percentile in (("--similarity-low", "starts", 5), ("--similarity-high", "ends", 95)):
        simulate.add_argument(
            flag,
            type=float,
            help=f"similarity: the cosine where the ramp {verb} (default: the {percentile}th percentile of "
            "the data's pair cosines)",
        )
    simulate.add_argument(
        "--held-out", type=float, default=0.2, help="share of prompts held out for accuracy"
    )
    simulate.add_argument("--round", type=int, default=25, help="active: labels per round between refits")
    simulate.add_argument("--every", type=int, default=25, help="evaluate the reward model every N labels")
    simulate.add_argument("--l2", type=float, default=1.0, help="reward model L2 strength")
    simulate.add_argument(
        "--near-duplicate-threshold",
        type=_threshold,
        default=0.98,
        help="cosine; 'none' keeps every response",
    )
    for flag, default, what in (
        ("--uncertainty-weight", UNCERTAINTY_WEIGHT, "active: λ of the reward model's uncertainty"),
        ("--novelty-weight", NOVELTY_WEIGHT, "active: λ of novelty against labelled responses"),
    ):
        simulate.add_argument(flag, type=float, default=default, help=f"{what} (default {default})")
    simulate.add_argument("--embedding-model", help="default: REAL_EMBEDDING_MODEL")
    simulate.add_argument("--out", default="simulation", help="folder for simulation.md, .json and the plots")
    simulate.add_argument("--cache", help="embedding cache (.npz; default OUT/embeddings.npz)")
    simulate.add_argument("--quiet", action="store_true", help="no progress bar")
    simulate.set_defaults(func=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        from app.logging import configure_logging

        configure_logging()  # every command: API, worker and beat (Celery keeps it), keys, migrate, ...
        return int(args.func(args))
    except Exception as exc:
        from pydantic import ValidationError
        from sqlalchemy.exc import DBAPIError

        from app.errors import DomainError

        if isinstance(exc, ValidationError):
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, DomainError):
            print(f"error: {exc.detail or exc.title}", file=sys.stderr)
            return 1
        if isinstance(exc, DBAPIError):  # unreachable, or not migrated: one line, not a traceback
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            print(
                f"error: database: {reason} (is it running and migrated? `real-align migrate`)",
                file=sys.stderr,
            )
            return 1
        if isinstance(exc, OSError):  # an input file that is not there, a folder not writable
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
