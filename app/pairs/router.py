"""The pairs chosen for a project."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import Row

from app.api.deps import SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.labels import repository as labels
from app.labels.outcome import Outcome
from app.labels.schemas import OutcomeRead
from app.pairs import repository
from app.pairs.models import Pair, PairStatus
from app.pairs.schemas import PairRead, PairResponse, RedundantWith
from app.projects.deps import ProjectDep
from app.prompts.models import Response

router = APIRouter(prefix="/projects/{project_id}/pairs", tags=["pairs"])


def _read(row: Row[Pair, str, Response, Response], decided: Outcome) -> PairRead:
    pair, external_id, a, b = row
    return PairRead(
        id=pair.id,
        prompt_id=pair.prompt_id,
        prompt_external_id=external_id,
        response_a=PairResponse(id=a.id, external_id=a.external_id, model=a.model, text=a.text),
        response_b=PairResponse(id=b.id, external_id=b.external_id, model=b.model, text=b.text),
        strategy=pair.strategy,
        rank=pair.rank,
        similarity=pair.similarity,
        priority=pair.priority,
        status=PairStatus(pair.status),
        labels=pair.labels_count,
        created_at=pair.created_at,
        redundant_with=RedundantWith.model_validate(pair.redundant_with) if pair.redundant_with else None,
        outcome=OutcomeRead.of(decided),
    )


@router.get("", response_model=Page[PairRead], responses=problems(404))
def list_pairs(
    project: ProjectDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: PairStatus | None = None,
) -> Page[PairRead]:
    """Pairs in creation order, with both responses' texts and what their labels decide."""
    rows = repository.page_with_responses(session, project.id, status=status, limit=limit, cursor=cursor)
    decided = labels.outcomes(session, (row[0] for row in rows.rows), project.annotations_per_pair)
    return rows.page(lambda row: _read(row, decided[row[0].id]))
