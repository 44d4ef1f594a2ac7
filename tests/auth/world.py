"""A small world of principals, keys and objects for authorization tests."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from app.auth import service as auth
from app.auth.context import BOOTSTRAP_ADMIN
from app.auth.models import Principal, Role
from app.config import get_settings
from app.db.base import utcnow
from app.embeddings.codec import to_bytes
from app.embeddings.models import Embedding
from app.exports import service as exports
from app.exports import tasks as export_tasks
from app.exports.schemas import ExportRequest
from app.jobs.models import Job, JobKind
from app.projects.models import Project
from app.prompts.models import Prompt, Response
from app.queue import service as queue
from app.schedules import service as schedules
from app.schedules.schemas import ExportScheduleSet
from app.webhooks import service as webhooks
from app.webhooks.schemas import ExportWebhookSet
from tests.factories import make_pairs, make_project
from tests.simulation.jobs import finished_simulation


@dataclass
class World:
    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)


def build_world(db: Any) -> World:
    """Projects P and Q; admin, data teams (own: P, other: Q), annotators A, B, reviewer (P), revoked."""
    world = World()
    settings = get_settings()
    with db.session() as session:
        p = make_project(session, name="P")
        q = make_project(session, name="Q")
        pairs = make_pairs(session, p, 3)
        make_pairs(session, q, 1)
        # Vectors for P's responses, so the neighbour routes have something to rank.
        texts = set(
            session.scalars(select(Response.text_sha256).join(Prompt).where(Prompt.project_id == p.id))
        )
        session.add_all(
            Embedding(
                model=p.embedding_model,
                text_sha256=sha,
                dim=4,
                vector=to_bytes(np.array([1.0, n, 0.5, -n])),
                token_count=4,
            )
            for n, sha in enumerate(sorted(texts))
        )
        job = Job(project_id=p.id, kind=JobKind.INGEST, total=0)
        session.add(job)
        session.flush()
        grants = {
            "admin": (Role.ADMIN, None),
            "data_team_own": (Role.DATA_TEAM, [p.id]),
            "data_team_other": (Role.DATA_TEAM, [q.id]),
            "annotator_a": (Role.ANNOTATOR, [p.id]),
            "annotator_b": (Role.ANNOTATOR, [p.id]),
            "revoked": (Role.ANNOTATOR, [p.id]),
            "spare": (Role.ANNOTATOR, [p.id]),
        }
        for name, (role, projects) in grants.items():
            created = auth.create_key(
                session, settings, BOOTSTRAP_ADMIN, role=role, name=name, projects=projects, expires_at=None
            )
            world.keys[name] = created.key
            world.ids[f"key_{name}"] = created.row.id
        # An annotator of P with the reviewer flag: P's review queue, and nothing else beyond annotating.
        world.keys["reviewer"] = auth.create_key(
            session,
            settings,
            BOOTSTRAP_ADMIN,
            role=Role.ANNOTATOR,
            name="reviewer",
            projects=[p.id],
            expires_at=None,
            reviewer=True,
        ).key
        auth.revoke_key(session, BOOTSTRAP_ADMIN, world.ids["key_revoked"], utcnow())
        claimed = queue.claim(session, p, "annotator_a", utcnow())
        assert not isinstance(claimed, str)
        export = exports.create(session, BOOTSTRAP_ADMIN, p, ExportRequest())
        # A finished simulation of data_team_own's (simulations belong to a principal, not to a project).
        owner = session.scalars(select(Principal).where(Principal.name == "data_team_own")).one()
        simulation = finished_simulation(session, owner, Path(tempfile.mkdtemp(prefix="real-align-test-")))
        world.ids.update(
            project=p.id,
            other_project=q.id,
            prompt=pairs[0].prompt_id,
            response=pairs[0].response_a_id,
            pair=pairs[2].id,
            prompt_external_id="factory-0",
            job=job.id,
            assignment_a=claimed.assignment.id,
            export=export.id,
            simulation=simulation,
        )
    export_tasks.run_export(str(world.ids["export"]))
    with db.session() as session:
        # P has an export schedule and a webhook (set after the export ran, so no delivery is attempted).
        p = session.get_one(Project, world.ids["project"])
        schedules.put(session, BOOTSTRAP_ADMIN, p, ExportScheduleSet(every_seconds=3600), utcnow())
        webhooks.put(session, BOOTSTRAP_ADMIN, p, ExportWebhookSet(url="https://hooks.example.com/p"))
    world.keys["malformed"] = "real_" + "x" * 38
    world.keys["anonymous"] = ""
    world.ids["expires_soon"] = utcnow() + timedelta(days=1)
    return world
