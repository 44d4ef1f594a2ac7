"""Rows for tests that need pairs without embedding anything."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.models import Principal, Role
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response


def make_project(session: Session, **overrides: Any) -> Project:
    """A project with the default settings unless overridden."""
    fields: dict[str, Any] = {
        "name": "factory project",
        "strategy": "dissimilar",
        "budget": None,
        "annotations_per_pair": 1,
        "pairs_per_prompt": 1,
        "lease_ttl_seconds": 600,
        "instructions": "Pick the better response.",
        "embedding_model": "factory-model",
    }
    fields.update(overrides)
    project = Project(**fields)
    session.add(project)
    session.flush()
    return project


def make_pairs(
    session: Session, project: Project, count: int, priorities: list[float] | None = None
) -> list[Pair]:
    """`count` paired prompts, each with two responses and one pair with its slots."""
    pairs: list[Pair] = []
    for n in range(count):
        prompt = Prompt(
            project_id=project.id,
            external_id=f"factory-{n}",
            prompt=f"Prompt number {n}",
            content_sha256=hashlib.sha256(f"factory-{n}".encode()).hexdigest(),
            status=PromptStatus.PAIRED,
        )
        texts = [f"first answer to {n}", f"second answer to {n}"]
        prompt.responses = [
            Response(
                position=i, text=t, text_sha256=hashlib.sha256(t.encode()).hexdigest(), model=f"model-{i}"
            )
            for i, t in enumerate(texts)
        ]
        session.add(prompt)
        session.flush()
        a_id, b_id = sorted(r.id for r in prompt.responses)
        priority = priorities[n] if priorities else 0.5
        pair = Pair(
            project_id=project.id,
            prompt_id=prompt.id,
            response_a_id=a_id,
            response_b_id=b_id,
            strategy=project.strategy,
            similarity=1.0 - priority,
            priority=priority,
            status=PairStatus.QUEUED,
        )
        session.add(pair)
        session.flush()
        session.add_all(
            PairSlot(project_id=project.id, pair_id=pair.id, slot=s, priority=priority)
            for s in range(project.annotations_per_pair)
        )
        pairs.append(pair)
    session.flush()
    return pairs


def make_annotator(session: Session, name: str, *projects: Any) -> Principal:
    """An annotator principal (no key) that may work on these projects, added to its grants if it exists:
    whom an admin may claim on behalf of."""
    principal = session.scalars(select(Principal).where(Principal.name == name)).first()
    if principal is None:
        principal = Principal(name=name, role=Role.ANNOTATOR, projects=[])
        session.add(principal)
    principal.projects = sorted(set(principal.projects or []) | {str(p) for p in projects})
    session.flush()
    return principal


def grant_annotator(name: str, *projects: Any) -> None:
    """make_annotator, committed in a unit of work of its own (for tests that hold only an API client)."""
    from app.db.session import get_database

    with get_database().session() as session:
        make_annotator(session, name, *projects)
