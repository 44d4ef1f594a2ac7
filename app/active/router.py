"""Active learning: the project's reward model, label-error suspects, and asking about a pair again."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from app.active import service, suspects
from app.active.schemas import (
    RefitRead,
    RequeueRead,
    RequeueRequest,
    RewardModelRead,
    RewardModelState,
    SuspectRead,
    SuspectReason,
    SuspectsRead,
)
from app.api.clock import NowDep
from app.api.deps import DataTeamDep, SessionDep
from app.api.responses import problems
from app.config import get_settings
from app.projects.deps import ActiveProjectDep, ProjectDep, ReviewProjectDep

router = APIRouter(prefix="/projects/{project_id}", tags=["active learning"])


@router.get("/reward-model", response_model=RewardModelState, responses=problems(404))
def get_reward_model(project: ProjectDep, session: SessionDep) -> RewardModelState:
    """The current Bradley–Terry reward model (on response embeddings, from the decided pairs) and its
    history, with cross-validated accuracy and log-loss."""
    settings = get_settings()
    history = service.history(session, project.id)
    fits = [RewardModelRead.model_validate(fit, from_attributes=True) for fit in history]
    return RewardModelState(
        current=fits[0] if fits else None,
        history=fits,
        decided_pairs=service.decided_pairs(session, project.id),
        refit_every_pairs=settings.reward_refit_every_pairs,
        next_refit_at_pairs=service.next_refit_at(history[0] if history else None),
        min_pairs=settings.reward_min_pairs,
    )


@router.post(
    "/reward-model/refit",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RefitRead,
    responses=problems(404),
)
def refit_reward_model(project: ProjectDep, session: SessionDep) -> RefitRead:
    """Fit the reward model now, in the background (a new version if enough pairs are decided)."""
    current = service.latest(session, project.id)
    service.request_refit(session, project)
    return RefitRead(project_id=project.id, current_version=current.version if current else None)


@router.get("/suspects", response_model=SuspectsRead, responses=problems(404, 422))
def list_suspects(
    project: ReviewProjectDep,
    session: SessionDep,
    max_probability: Annotated[
        float, Query(gt=0, le=1, description="List pairs whose winner is right with less than this.")
    ] = suspects.DEFAULT_MAX_PROBABILITY,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SuspectsRead:
    """Decided pairs whose recorded winner is probably wrong, least likely right first, with reasons: the
    reward model's out-of-fold probability combined with the labels' Dawid–Skene posterior (agreement and
    annotator reliability). Act on one with POST .../pairs/{pair_id}/requeue."""
    found = suspects.suspects(session, project, max_probability=max_probability, limit=limit)
    return SuspectsRead(
        items=[
            SuspectRead(
                pair_id=s.pair_id,
                prompt_id=s.prompt_id,
                result=s.result,  # type: ignore[arg-type]
                winner_response_id=s.winner_response_id,
                labels=s.labels,
                agreement=s.agreement,
                model_probability=s.model_probability,
                label_probability=s.label_probability,
                probability_right=s.probability_right,
                reasons=[SuspectReason(code=r.code, detail=r.detail) for r in s.reasons],
                extra_labels=s.extra_labels,
                extra_label_pending=s.extra_label_pending,
                review_requested=s.review_requested,
            )
            for s in found.items
        ],
        total=found.total,
        decided_pairs=found.decided_pairs,
        model_version=found.model_version,
        max_probability=max_probability,
    )


@router.post("/pairs/{pair_id}/requeue", response_model=RequeueRead, responses=problems(404, 409, 422))
def requeue_pair(
    pair_id: uuid.UUID,
    body: RequeueRequest,
    project: ActiveProjectDep,
    session: SessionDep,
    caller: DataTeamDep,
    now: NowDep,
) -> RequeueRead:
    """Ask one more label on a labelled pair (`label`: a slot of its own, handed out before new pairs and
    never to an annotator who labelled the pair; spends one label of the budget, 409 when the budget or the
    project's max_extra_labels_per_pair has none left) or send it to the review queue (`review`).
    Idempotent: while the asked-for label is awaited, or the review pending, asking again changes nothing."""
    done = suspects.requeue(session, caller, project, pair_id, body.action, body.note, now)
    return RequeueRead(
        pair_id=done.pair.id,
        action=done.action,
        changed=done.changed,
        extra_labels=done.pair.extra_labels,
        extra_label_pending=done.extra_label_pending,
        review_requested_at=done.pair.review_requested_at,
        budget=done.budget,
        budget_committed=done.budget_committed,
    )
