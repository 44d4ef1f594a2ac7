"""The annotation queue: claim a pair, label it."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Annotated

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Header, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.datastructures import State

from app.api.clock import NowDep
from app.api.deps import AnnotatorDep, BearerDep, SessionDep, credentials_of
from app.api.responses import problems
from app.auth.guard import Credentials
from app.config import get_settings
from app.quality import service as quality
from app.queue import fastlane, service
from app.queue.models import Assignment, Choice
from app.queue.repository import StoredLabel
from app.queue.schemas import (
    ClaimRead,
    ClaimRequest,
    LabelRead,
    LabelRequest,
    LeaseRead,
    ShownResponse,
    SkipRequest,
)

router = APIRouter(tags=["queue"])


def limiter_of(state: State) -> CapacityLimiter:
    """At most REAL_QUEUE_CONCURRENCY claims and labels at once in this app (its ``app.state``); the rest
    wait on its loop."""
    limiter: CapacityLimiter | None = getattr(state, "queue_limiter", None)
    if limiter is None:  # made on first use: an anyio limiter belongs to the running event loop
        limiter = state.queue_limiter = CapacityLimiter(get_settings().queue_concurrency)
    return limiter


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
async def claim(
    project_id: uuid.UUID,
    request: Request,
    credentials: BearerDep,
    now: NowDep,
    body: ClaimRequest | None = None,
) -> Response:
    """Lease the most informative free pair to the caller (or, for admins, to `annotator`)."""
    return await serve_claim(
        limiter_of(request.app.state), credentials_of(request, credentials), project_id, now, body
    )


async def serve_claim(
    limiter: CapacityLimiter,
    credentials: Credentials,
    project_id: uuid.UUID,
    now: datetime,
    body: ClaimRequest | None,
) -> Response:
    """The claim route's work and answer (app/queue/edge.py serves it without the route, too)."""
    # One thread hop for the whole unit of work (auth, claim, commit): the queue's hot path.
    annotator, instructions, result = await to_thread.run_sync(
        fastlane.claim_request, credentials, project_id, now, body, limiter=limiter
    )
    if isinstance(result, str):
        return Response(
            status_code=status.HTTP_204_NO_CONTENT,
            headers={"Real-Queue-Reason": result, "Retry-After": str(service.RETRY_AFTER_SECONDS[result])},
        )
    read = ClaimRead(
        assignment_id=result.assignment.id,
        lease_expires_at=result.assignment.lease_expires_at,
        annotator=annotator,
        prompt=result.prompt,
        instructions=instructions,
        response_a=ShownResponse(id=result.first.id, text=result.first.text),
        response_b=ShownResponse(id=result.second.id, text=result.second.text),
    )
    return JSONResponse(read.model_dump(mode="json"))


def _label_read(stored: StoredLabel) -> LabelRead:
    return LabelRead(
        id=stored.id,
        assignment_id=stored.assignment_id,
        pair_id=stored.pair_id,
        annotator=stored.annotator,
        choice=Choice(stored.choice),
        winner_response_id=stored.winner_response_id,
        shown_first_response_id=stored.shown_first_response_id,
        labeled_at=stored.labeled_at,
        confidence=stored.confidence,
        rationale=stored.rationale,
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retry-safe key: the same key and body return the first result; another body is 409.",
    ),
]


@router.post(
    "/assignments/{assignment_id}/label",
    status_code=status.HTTP_201_CREATED,
    response_model=LabelRead,
    responses={
        200: {"description": "A retry: the label stored by the first identical request", "model": LabelRead},
        **problems(404, 409),
    },
)
async def label(
    assignment_id: uuid.UUID,
    body: LabelRequest,
    request: Request,
    credentials: BearerDep,
    now: NowDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Store the choice for a live assignment; the same request again returns the first result (200)."""
    return await serve_label(
        limiter_of(request.app.state),
        credentials_of(request, credentials),
        assignment_id,
        body,
        now,
        idempotency_key,
    )


async def serve_label(
    limiter: CapacityLimiter,
    credentials: Credentials,
    assignment_id: uuid.UUID,
    body: LabelRequest,
    now: datetime,
    idempotency_key: str | None,
) -> JSONResponse:
    """The label route's work and answer (app/queue/edge.py serves it without the route, too)."""
    arrived = time.monotonic()

    def work() -> tuple[StoredLabel, bool]:
        # Stamped when the work starts, not when the request came in: under load a label waits seconds for
        # the limiter, and an export of a snapshot counts on a label being written within moments of its
        # labeled_at (app/exports/snapshot.settle), or two exports of one snapshot could differ.
        started = now + timedelta(seconds=time.monotonic() - arrived)
        return fastlane.label_request(credentials, assignment_id, body, started, idempotency_key)

    stored, created = await to_thread.run_sync(work, limiter=limiter)
    return JSONResponse(_label_read(stored).model_dump(mode="json"), status_code=201 if created else 200)


@router.delete(
    "/assignments/{assignment_id}/label", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409)
)
def undo_label(assignment_id: uuid.UUID, session: SessionDep, caller: AnnotatorDep, now: NowDep) -> Response:
    """Withdraw your last label within the undo window; the pair slot is claimable again."""
    assignment = service.get_assignment(session, caller, assignment_id)
    service.undo(session, caller, assignment, now)
    quality.schedule_aggregate(session, assignment.project_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _lease_read(assignment: Assignment) -> LeaseRead:
    left = max(get_settings().max_lease_renewals - assignment.renewals, 0)
    return LeaseRead(
        assignment_id=assignment.id,
        status=assignment.status,
        lease_expires_at=assignment.lease_expires_at,
        renewals_left=left,
    )


@router.post("/assignments/{assignment_id}/renew", response_model=LeaseRead, responses=problems(404, 409))
def renew(assignment_id: uuid.UUID, session: SessionDep, caller: AnnotatorDep, now: NowDep) -> LeaseRead:
    """Extend a live lease by the project's lease TTL (a capped number of times)."""
    return _lease_read(service.renew(session, service.get_assignment(session, caller, assignment_id), now))


@router.post("/assignments/{assignment_id}/release", response_model=LeaseRead, responses=problems(404, 409))
def release(assignment_id: uuid.UUID, session: SessionDep, caller: AnnotatorDep, now: NowDep) -> LeaseRead:
    """Give the pair back now (it may come to you again later)."""
    assignment = service.get_assignment(session, caller, assignment_id)
    return _lease_read(service.give_up(session, assignment, now, skip=False))


@router.post("/assignments/{assignment_id}/skip", response_model=LeaseRead, responses=problems(404, 409))
def skip(
    assignment_id: uuid.UUID,
    session: SessionDep,
    caller: AnnotatorDep,
    now: NowDep,
    body: SkipRequest | None = None,
) -> LeaseRead:
    """Decline the pair (it will not come to you again); skips do not count against the budget."""
    assignment = service.get_assignment(session, caller, assignment_id)
    return _lease_read(
        service.give_up(session, assignment, now, skip=True, reason=body.reason if body else None)
    )
