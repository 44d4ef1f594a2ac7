"""Prometheus metrics: what the service counts, the queue gauges computed at scrape time, and /metrics.

Counters and histograms live in this process (or, with ``PROMETHEUS_MULTIPROC_DIR`` set before start, in
files there that every process of the host writes: several API workers, a prefork Celery worker's
children; prometheus-client's multiprocess mode). The queue's depth and live leases are not counted as
they change: one bounded, grouped query reads them from the database when /metrics is scraped, so every
API process answers the same and nothing drifts. docs/design.md ("Observability") says who may read it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select
from starlette.types import Scope

from app.config import get_settings
from app.db.base import utcnow
from app.errors import NotFound, Unauthorized

# Per-project gauges for at most this many projects (the ones with the most open slots), one query.
MAX_PROJECTS = 500
# A scrape never waits on the database longer than this.
QUERY_TIMEOUT_MS = 2_000

REQUEST_SECONDS = Histogram(
    "real_align_http_request_duration_seconds",
    "HTTP request latency by route template (not raw path), method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CLAIMS = Counter(
    "real_align_claims_total",
    "Queue claims by outcome: claimed, or why none (empty, budget_spent, waiting_for_embeddings).",
    ["outcome"],
)
LABELS = Counter(
    "real_align_labels_total", "Labels stored (created) and replays of a stored one.", ["outcome"]
)
EMBEDDED_TEXTS = Counter(
    "real_align_embedded_texts_total",
    "Texts embedded and stored, by model (rate() = embeddings/s).",
    ["model"],
)
TASKS = Counter(
    "real_align_tasks_total",
    "Task attempts by task and outcome: success, retry (a transient error, tried again) or failure.",
    ["task", "outcome"],
)
EXPORT_SECONDS = Histogram(
    "real_align_export_duration_seconds",
    "Time to write and record an export's files, by format.",
    ["format"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR, which prometheus-client itself reads at import (so it is not a setting)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class QueueCollector(Collector):
    """Queue depth (open slots nobody holds) and live leases per project, read at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "real_align_queue_depth",
            "Open slots of ordinary pairs that no live lease holds, per project (at scrape time).",
            labels=["project_id"],
        )
        leases = GaugeMetricFamily(
            "real_align_live_leases", "Live leases per project (at scrape time).", labels=["project_id"]
        )
        for project_id, open_slots, live in queue_gauges(utcnow()):
            depth.add_metric([project_id], open_slots)
            leases.add_metric([project_id], live)
        yield depth
        yield leases


def queue_gauges(now: datetime) -> list[tuple[str, int, int]]:
    """(project id, open unleased slots, live leases) of the active projects with the most open slots.

    One grouped statement over not-done slots of non-gold pairs (the dashboard's ``slots_open`` and
    ``slots_leased``, app/dashboard/service.queue), capped at MAX_PROJECTS rows and QUERY_TIMEOUT_MS.
    """
    from sqlalchemy import case, text

    from app.db.session import get_database
    from app.pairs.models import Pair, PairSlot
    from app.projects.models import Project, ProjectStatus

    leased = case((PairSlot.lease_expires_at > now, 1), else_=0)
    open_slots = func.count() - func.sum(leased)
    statement = (
        select(PairSlot.project_id, open_slots, func.sum(leased))
        .join(Pair, Pair.id == PairSlot.pair_id)
        .join(Project, Project.id == PairSlot.project_id)
        .where(PairSlot.done.is_(False), Pair.gold_answer.is_(None), Project.status == ProjectStatus.ACTIVE)
        .group_by(PairSlot.project_id)
        .order_by(open_slots.desc(), PairSlot.project_id)
        .limit(MAX_PROJECTS)
    )
    db = get_database()
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SET LOCAL statement_timeout = {QUERY_TIMEOUT_MS}"))
        rows = conn.execute(statement).all()
    return [(str(p), int(o or 0), int(live or 0)) for p, o, live in rows]


def counters() -> bytes:
    """Every process's counters and histograms (multiprocess mode), or this process's (with its process and
    GC metrics)."""
    if multiprocess_dir():
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return generate_latest(collected)
    return generate_latest(REGISTRY)


def exposition() -> bytes:
    """What /metrics answers: the counters, then the queue gauges read now."""
    queue = CollectorRegistry()
    queue.register(QueueCollector())
    return counters() + generate_latest(queue)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """The Prometheus exposition; off (404) with REAL_METRICS_ENABLED=false, behind a bearer token with
    REAL_METRICS_TOKEN."""
    settings = get_settings()
    if not settings.metrics_enabled:
        raise NotFound("metrics are off (REAL_METRICS_ENABLED)")
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if token:
        sent = request.headers.get("authorization", "")
        if not secrets.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("/metrics needs Authorization: Bearer <REAL_METRICS_TOKEN>")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The matched route's path with its parameters by name (/v1/projects/{project_id}/stats), or
    "unmatched". Included routers keep their prefix apart from the route's own path, so the template is the
    request path with each path parameter's segment put back as its name."""
    if scope.get("route") is None:
        return "unmatched"
    params: dict[str, Any] = scope.get("path_params") or {}
    names = {str(value): name for name, value in params.items()}
    segments = str(scope.get("path", "")).split("/")
    return "/".join(f"{{{names[s]}}}" if s in names else s for s in segments)
