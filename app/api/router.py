"""Every /v1 route."""

from __future__ import annotations

from fastapi import APIRouter

from app.active.router import router as active_router
from app.audit.router import router as audit_router
from app.auth.router import router as auth_router
from app.auth.session_router import router as session_router
from app.dashboard.router import router as dashboard_router
from app.exports.router import router as exports_router
from app.jobs.router import router as jobs_router
from app.neighbors.router import router as neighbors_router
from app.pairs.router import router as pairs_router
from app.projects.router import router as projects_router
from app.prompts.router import router as prompts_router
from app.prompts.router import upload_router as prompts_upload_router
from app.quality.router import router as quality_router
from app.queue.router import router as queue_router
from app.schedules.router import router as schedules_router
from app.simulation.router import router as simulations_router
from app.webhooks.router import router as webhooks_router

api_router = APIRouter(prefix="/v1")
for _router in (
    auth_router,
    session_router,
    audit_router,
    projects_router,
    prompts_router,
    prompts_upload_router,
    jobs_router,
    pairs_router,
    queue_router,
    exports_router,
    neighbors_router,
    quality_router,
    active_router,
    dashboard_router,
    schedules_router,
    simulations_router,
    webhooks_router,
):
    api_router.include_router(_router)
