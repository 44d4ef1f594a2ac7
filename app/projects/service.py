"""Project rules: creation defaults, what may change, archiving, stats."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.embeddings.models import Embedding
from app.errors import Conflict, InvalidInput, NotFound
from app.pairs.models import Pair
from app.projects.models import Project, ProjectStatus
from app.projects.schemas import ProjectCreate, ProjectStats, ProjectUpdate
from app.prompts.models import Prompt, PromptStatus, Response
from app.queue.models import Label

FROZEN_ONCE_PAIRED = ("strategy", "annotations_per_pair", "pairs_per_prompt")


def create(session: Session, body: ProjectCreate) -> Project:
    """A new active project using the configured embedding model."""
    project = Project(**body.model_dump(), embedding_model=get_settings().embedding_model)
    session.add(project)
    session.flush()
    return project


def get(session: Session, project_id: uuid.UUID, *, include_archived: bool = True) -> Project:
    """A project by id, or 404."""
    project = session.get(Project, project_id)
    if project is None or (not include_archived and project.status == ProjectStatus.ARCHIVED):
        raise NotFound(f"no project {project_id}")
    return project


def get_active(session: Session, project_id: uuid.UUID) -> Project:
    """A project that accepts new work (not archived), or 404."""
    return get(session, project_id, include_archived=False)


def update(session: Session, project: Project, body: ProjectUpdate) -> Project:
    """Apply the fields sent; pairing settings are frozen once pairs exist (409)."""
    changes = body.model_dump(exclude_unset=True)
    for field in (
        "name",
        "strategy",
        "annotations_per_pair",
        "pairs_per_prompt",
        "lease_ttl_seconds",
        "instructions",
    ):
        if field in changes and changes[field] is None:
            raise InvalidInput(f"{field} cannot be null", field=field)
    frozen = [f for f in FROZEN_ONCE_PAIRED if f in changes and changes[f] != getattr(project, f)]
    if frozen and session.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == project.id)):
        raise Conflict(
            f"{', '.join(frozen)} cannot change once pairs exist "
            "(re-selection comes with the selection engine)",
            field=frozen[0],
        )
    for field, value in changes.items():
        setattr(project, field, value)
    session.flush()
    return project


def archive(session: Session, project: Project) -> None:
    """Archive: the project stays readable and exportable but takes no new prompts or claims."""
    project.status = ProjectStatus.ARCHIVED
    session.flush()


def stats(session: Session, project: Project) -> ProjectStats:
    """Counts a data team watches: ingest, embedding, pairing, labelling, budget."""
    pid = project.id
    prompts = session.scalar(select(func.count()).select_from(Prompt).where(Prompt.project_id == pid)) or 0
    unpairable = (
        session.scalar(
            select(func.count())
            .select_from(Prompt)
            .where(Prompt.project_id == pid, Prompt.status == PromptStatus.UNPAIRABLE)
        )
        or 0
    )
    responses = (
        session.scalar(
            select(func.count()).select_from(Response).join(Prompt).where(Prompt.project_id == pid)
        )
        or 0
    )
    embedded = (
        session.scalar(
            select(func.count())
            .select_from(Response)
            .join(Prompt)
            .join(
                Embedding,
                (Embedding.text_sha256 == Response.text_sha256)
                & (Embedding.model == project.embedding_model),
            )
            .where(Prompt.project_id == pid)
        )
        or 0
    )
    pairs = session.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == pid)) or 0
    labels = session.scalar(select(func.count()).select_from(Label).where(Label.project_id == pid)) or 0
    remaining = None if project.budget is None else max(project.budget - labels, 0)
    return ProjectStats(
        prompts=prompts,
        responses=responses,
        embedded=embedded,
        unpairable=unpairable,
        pairs=pairs,
        labels=labels,
        budget=project.budget,
        budget_remaining=remaining,
        pairs_released=project.pairs_released,
    )
