"""The dashboard page: one HTML file and its script and style, served by the API process (no build step).

The page holds no data: its script fetches the JSON routes of app/dashboard/router.py with the browser's
session cookie (POST /v1/session) and draws the charts as SVG. A strict Content-Security-Policy allows only
these same-origin files, so nothing injected into a name could run.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.errors import NotFound

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/dashboard")
def dashboard_page() -> FileResponse:
    """The dashboard for data teams and admins (it signs in with the session cookie)."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8", headers=HEADERS)


@router.get("/dashboard/assets/{name}")
def dashboard_asset(name: str) -> FileResponse:
    """The page's script and style (only these names)."""
    if name not in ASSETS:
        raise NotFound(f"no dashboard asset {name!r}")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
