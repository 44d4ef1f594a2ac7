"""The project dashboard page (/dashboard) for data teams and admins: templates/dashboard.html with
static/dashboard.js and dashboard.css, drawing the numbers of the JSON routes in app/dashboard/router.py
(the same numbers anyone with the key can fetch) as SVG charts. Signed in through /sign-in, as every page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from app.web import router as web

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard_page() -> HTMLResponse:
    """Budget burn-down, labels per hour, queue and leases, agreement over time, annotators, similarity,
    exports and the reward-model curve of one project."""
    return web.page("dashboard.html")
