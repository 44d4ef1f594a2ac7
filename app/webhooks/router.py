"""Export webhooks: a project's URL and signing secret, and the deliveries made to it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.projects.deps import ProjectDep
from app.webhooks import service
from app.webhooks.models import DeliveryStatus
from app.webhooks.schemas import ExportWebhookRead, ExportWebhookSet, WebhookDeliveryRead

router = APIRouter(prefix="/projects/{project_id}", tags=["exports"])


@router.put("/export-webhook", response_model=ExportWebhookRead, responses=problems(404))
def put_export_webhook(
    project: ProjectDep, body: ExportWebhookSet, session: SessionDep, caller: DataTeamDep
) -> ExportWebhookRead:
    """Set the URL that gets a signed `export.succeeded` POST for each succeeded export of the project.
    The answer that creates the webhook carries its signing `secret`, shown this once."""
    return service.put(session, caller, project, body)


@router.get("/export-webhook", response_model=ExportWebhookRead, responses=problems(404))
def get_export_webhook(project: ProjectDep, session: SessionDep) -> ExportWebhookRead:
    """The project's webhook (without the secret); 404 if it has none."""
    return service.read(service.get(session, project))


@router.delete("/export-webhook", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404))
def delete_export_webhook(project: ProjectDep, session: SessionDep, caller: DataTeamDep) -> Response:
    """Remove the webhook; 204 also when there was none."""
    service.delete(session, caller, project)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/export-webhook/rotate-secret", response_model=ExportWebhookRead, responses=problems(404))
def rotate_export_webhook_secret(
    project: ProjectDep, session: SessionDep, caller: DataTeamDep
) -> ExportWebhookRead:
    """A new signing secret, shown this once; the old one stops working at once."""
    return service.rotate_secret(session, caller, project)


@router.get("/webhook-deliveries", response_model=Page[WebhookDeliveryRead], responses=problems(404))
def list_webhook_deliveries(
    project: ProjectDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
    status: Annotated[DeliveryStatus | None, Query(description="Only deliveries in this state.")] = None,
) -> Page[WebhookDeliveryRead]:
    """The project's webhook deliveries, newest first: status, attempts, last HTTP status and error."""
    deliveries = service.list_deliveries(session, project, limit=limit, cursor=cursor, status=status)
    return deliveries.page(lambda row: WebhookDeliveryRead.model_validate(row, from_attributes=True))
