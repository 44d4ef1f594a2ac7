"""The project's reward model: read it, refit it."""

from __future__ import annotations

from fastapi import APIRouter, status

from app.active import service
from app.active.schemas import RefitRead, RewardModelRead, RewardModelState
from app.api.deps import SessionDep
from app.api.responses import problems
from app.config import get_settings
from app.projects.deps import ProjectDep

router = APIRouter(prefix="/projects/{project_id}/reward-model", tags=["active learning"])


@router.get("", response_model=RewardModelState, responses=problems(404))
def get_reward_model(project: ProjectDep, session: SessionDep) -> RewardModelState:
    """The current Bradley–Terry reward model (on response embeddings, from the decided pairs) and its
    history, with cross-validated accuracy and log-loss."""
    settings = get_settings()
    fits = [
        RewardModelRead.model_validate(fit, from_attributes=True)
        for fit in service.history(session, project.id)
    ]
    return RewardModelState(
        current=fits[0] if fits else None,
        history=fits,
        decided_pairs=service.decided_pairs(session, project.id),
        refit_every_pairs=settings.reward_refit_every_pairs,
        min_pairs=settings.reward_min_pairs,
    )


@router.post(
    "/refit", status_code=status.HTTP_202_ACCEPTED, response_model=RefitRead, responses=problems(404)
)
def refit_reward_model(project: ProjectDep, session: SessionDep) -> RefitRead:
    """Fit the reward model now, in the background (a new version if enough pairs are decided)."""
    current = service.latest(session, project.id)
    service.request_refit(session, project)
    return RefitRead(project_id=project.id, current_version=current.version if current else None)
