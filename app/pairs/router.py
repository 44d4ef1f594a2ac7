"""The pairs chosen for a project."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import aliased

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page, decode_cursor, encode_cursor
from app.api.responses import problems
from app.pairs.models import Pair, PairStatus
from app.pairs.schemas import PairRead, PairResponse
from app.projects import service as projects
from app.prompts.models import Prompt, Response

router = APIRouter(prefix="/projects/{project_id}/pairs", tags=["pairs"])


@router.get("", response_model=Page[PairRead], responses=problems(404))
def list_pairs(
    project_id: uuid.UUID,
    session: SessionDep,
    caller: DataTeamDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: PairStatus | None = None,
) -> Page[PairRead]:
    """Pairs in creation order, with both responses' texts."""
    project = projects.get(session, caller, project_id)
    ra, rb = aliased(Response), aliased(Response)
    query = (
        select(Pair, Prompt.external_id, ra, rb)
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(Pair.project_id == project.id)
        .order_by(Pair.id)
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(Pair.status == status)
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(Pair.id > after)
    rows = session.execute(query).all()
    items = [
        PairRead(
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
            redundant_with=pair.redundant_with,
        )
        for pair, external_id, a, b in rows[:limit]
    ]
    next_cursor = encode_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)
