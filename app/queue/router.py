"""The annotation queue: claim a pair, label it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from app.api.clock import NowDep
from app.api.deps import AnnotatorDep, SessionDep
from app.api.responses import problems
from app.errors import Forbidden
from app.projects import service as projects
from app.queue import service
from app.queue.schemas import ClaimRead, ClaimRequest, LabelRead, LabelRequest, ShownResponse

router = APIRouter(tags=["queue"])

_EMPTY_DOC = {
    "description": "Nothing to hand out now. "
    "`Real-Queue-Reason`: empty | budget_spent | waiting_for_embeddings; "
    "`Retry-After` says when to ask again.",
    "headers": {
        "Real-Queue-Reason": {
            "schema": {"type": "string", "enum": ["empty", "budget_spent", "waiting_for_embeddings"]}
        },
        "Retry-After": {"schema": {"type": "integer"}},
    },
}


@router.post(
    "/projects/{project_id}/queue/claim",
    response_model=ClaimRead,
    responses={204: _EMPTY_DOC, **problems(404)},
)
def claim(
    project_id: uuid.UUID,
    session: SessionDep,
    caller: AnnotatorDep,
    now: NowDep,
    body: ClaimRequest | None = None,
) -> ClaimRead | Response:
    """Lease the most informative free pair to the caller (or, for admins, to `annotator`)."""
    annotator = caller.name
    if body is not None and body.annotator is not None:
        if not caller.is_admin:
            raise Forbidden("only admin keys may claim on behalf of another annotator", field="annotator")
        annotator = body.annotator
    project = projects.get_active(session, caller, project_id)
    result = service.claim(session, project, annotator, now)
    if isinstance(result, str):
        return Response(
            status_code=status.HTTP_204_NO_CONTENT,
            headers={"Real-Queue-Reason": result, "Retry-After": str(service.RETRY_AFTER_SECONDS[result])},
        )
    return ClaimRead(
        assignment_id=result.assignment.id,
        lease_expires_at=result.assignment.lease_expires_at,
        annotator=annotator,
        prompt=result.prompt.prompt,
        instructions=project.instructions,
        response_a=ShownResponse(id=result.first.id, text=result.first.text),
        response_b=ShownResponse(id=result.second.id, text=result.second.text),
    )


@router.post(
    "/assignments/{assignment_id}/label",
    status_code=status.HTTP_201_CREATED,
    response_model=LabelRead,
    responses={
        200: {"description": "A retry: the label stored by the first identical request", "model": LabelRead},
        **problems(404, 409),
    },
)
def label(
    assignment_id: uuid.UUID, body: LabelRequest, session: SessionDep, caller: AnnotatorDep, now: NowDep
) -> JSONResponse:
    """Store the choice for a live assignment; the same choice again returns the first result (200)."""
    assignment = service.get_assignment(session, caller, assignment_id)
    stored, created = service.label(session, assignment, body.choice, now)
    read = LabelRead(
        id=stored.id,
        assignment_id=stored.assignment_id,
        pair_id=stored.pair_id,
        annotator=stored.annotator,
        choice=stored.choice,
        winner_response_id=stored.winner_response_id,
        shown_first_response_id=stored.shown_first_response_id,
        labeled_at=stored.labeled_at,
    )
    return JSONResponse(read.model_dump(mode="json"), status_code=201 if created else 200)
