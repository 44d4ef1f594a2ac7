"""Project rules: creation defaults, what may change, archiving, stats."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate
from app.audit import service as audit
from app.auth.context import Caller
from app.auth.models import Role
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.embeddings.models import Embedding
from app.errors import Conflict, InvalidInput, NotFound
from app.neighbors import redundancy
from app.pairs import repository as pairs_repository
from app.pairs.models import Pair
from app.projects.models import Project, ProjectStatus
from app.projects.schemas import ProjectCreate, ProjectStats, ProjectUpdate
from app.prompts.models import Prompt, PromptStatus, Response
from app.queue import repository as queue_repository
from app.queue.models import Label
from app.selection.reembed import reembed_project

# Slots are made per pair when it is created, so overlap cannot change under existing pairs. Strategy,
# pairs per prompt and the near-duplicate threshold apply to new prompts and to POST .../reselect.
FROZEN_ONCE_PAIRED = ("annotations_per_pair",)


def create(session: Session, caller: Caller, body: ProjectCreate) -> Project:
    """A new active project with the chosen (else the configured) embedding model, owned by the caller."""
    project = Project(
        **body.model_dump(exclude={"embedding_model"}),
        embedding_model=body.embedding_model or get_settings().embedding_model,
        created_by_principal_id=caller.principal_id,
    )
    session.add(project)
    session.flush()
    details = body.model_dump(mode="json") | {"embedding_model": project.embedding_model}
    audit.record(session, caller, "project.created", "project", project.id, details)
    return project


def can_see(caller: Caller, project: Project) -> bool:
    """Admins see every project; others the projects granted to them or (data teams) created by them."""
    if caller.is_admin or project.id in caller.projects:
        return True
    return (
        caller.role is Role.DATA_TEAM
        and caller.principal_id is not None
        and project.created_by_principal_id == caller.principal_id
    )


def visible_filter(caller: Caller) -> ColumnElement[bool]:
    """The SQL condition for the projects a caller may see."""
    if caller.is_admin:
        return true()
    granted = Project.id.in_(list(caller.projects)) if caller.projects else false()
    if caller.role is Role.DATA_TEAM and caller.principal_id is not None:
        return or_(granted, Project.created_by_principal_id == caller.principal_id)
    return granted


def list_visible(session: Session, caller: Caller, *, limit: int, cursor: str | None) -> PageRows[Project]:
    """A page of the projects the caller may see, oldest first."""
    query = select(Project).where(visible_filter(caller))
    return paginate(session, query, Project.id, limit=limit, cursor=cursor)


def list_workable(session: Session, caller: Caller, *, limit: int, cursor: str | None) -> PageRows[Project]:
    """A page of the projects the caller may see that take work (not archived), oldest first."""
    query = select(Project).where(visible_filter(caller), Project.status != ProjectStatus.ARCHIVED)
    return paginate(session, query, Project.id, limit=limit, cursor=cursor)


def get(session: Session, caller: Caller, project_id: uuid.UUID, *, include_archived: bool = True) -> Project:
    """A project the caller may see, or 404 (the same answer whether it is missing or someone else's)."""
    project = session.get(Project, project_id)
    if (
        project is None
        or not can_see(caller, project)
        or (not include_archived and project.status == ProjectStatus.ARCHIVED)
    ):
        raise NotFound(f"no project {project_id}")
    return project


def get_active(session: Session, caller: Caller, project_id: uuid.UUID) -> Project:
    """A visible project that accepts new work (not archived), or 404."""
    return get(session, caller, project_id, include_archived=False)


def update(session: Session, caller: Caller, project: Project, body: ProjectUpdate) -> Project:
    """Apply the fields sent; pairing settings are frozen once pairs exist (409)."""
    changes = body.model_dump(exclude_unset=True)
    for field in (
        "name",
        "strategy",
        "annotations_per_pair",
        "pairs_per_prompt",
        "lease_ttl_seconds",
        "instructions",
        "embedding_model",
        "gold_rate",
        "gold_min_accuracy",
        "review_agreement_threshold",
        "skip_redundant_pairs",
        "max_extra_labels_per_pair",
    ):
        if field in changes and changes[field] is None:
            raise InvalidInput(f"{field} cannot be null", field=field)
    frozen = [f for f in FROZEN_ONCE_PAIRED if f in changes and changes[f] != getattr(project, f)]
    if frozen and session.scalar(select(func.count()).select_from(Pair).where(Pair.project_id == project.id)):
        raise Conflict(
            f"{', '.join(frozen)} cannot change once pairs exist "
            "(each pair's annotation slots are made when it is chosen)",
            field=frozen[0],
        )
    previous_model = project.embedding_model
    skipping = changes.get("skip_redundant_pairs", project.skip_redundant_pairs)
    if project.skip_redundant_pairs and not skipping:
        # Before the project row is written, as re-embedding does (lock order: slot, pair, then project).
        redundancy.restore_all(session, project)
    elif skipping and any(
        field in changes and changes[field] != getattr(project, field)
        for field in ("skip_redundant_pairs", "near_duplicate_threshold", "embedding_model")
    ):
        # The task reads the project after commit, so it applies the new setting, threshold or model.
        send_after_commit(session, "neighbors.mark_redundant", project_id=str(project.id))
    # Before the project row is written: re-embedding locks prompts and slots first (a claim's lock order).
    reembedded = (
        reembed_project(session, project)
        if changes.get("embedding_model", previous_model) != previous_model
        else None
    )
    for field, value in changes.items():
        setattr(project, field, value)
    session.flush()
    audit.record(
        session,
        caller,
        "project.changed",
        "project",
        project.id,
        body.model_dump(mode="json", exclude_unset=True),
    )
    if reembedded is not None:
        audit.record(
            session,
            caller,
            "project.reembedding",
            "project",
            project.id,
            {"from": previous_model, "to": project.embedding_model, "prompts": reembedded},
        )
    return project


def archive(session: Session, caller: Caller, project: Project) -> None:
    """Archive: the project stays readable and exportable but takes no new prompts or claims."""
    project.status = ProjectStatus.ARCHIVED
    session.flush()
    audit.record(session, caller, "project.archived", "project", project.id)


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
    # Gold checks are outside the budget: they are counted apart.
    gold_labels = (
        session.scalar(
            select(func.count())
            .select_from(Label)
            .join(Pair, Pair.id == Label.pair_id)
            .where(Label.project_id == pid, Pair.gold_answer.is_not(None))
        )
        or 0
    )
    labels = (
        session.scalar(select(func.count()).select_from(Label).where(Label.project_id == pid)) or 0
    ) - gold_labels
    remaining = None if project.budget is None else max(project.budget - labels, 0)
    return ProjectStats(
        prompts=prompts,
        responses=responses,
        embedded=embedded,
        unpairable=unpairable,
        pairs=pairs,
        labels=labels,
        gold_labels=gold_labels,
        budget=project.budget,
        budget_remaining=remaining,
        pairs_released=queue_repository.pairs_released(session, pid),
        redundant_pairs=pairs_repository.count_redundant(session, pid),
    )
