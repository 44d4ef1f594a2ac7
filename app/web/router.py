"""The browser pages served by the API process: sign-in and the annotator page (no front-end server).

Pages are plain HTML files in templates/ whose `{{static}}` is replaced by the static URL prefix. Static
files live under a prefix that names a hash of their contents (`/static/<hash>/...`), so they are cached
for a year as immutable and a new release is fetched at once; pages themselves are `no-cache`. A strict
Content-Security-Policy allows only same-origin scripts and styles: nothing in a response text can run even
if it got past the page's escaping and sanitising. The pages hold no data: their scripts call the JSON API
with the session cookie (app/auth/session_router.py) and its CSRF token.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.web import dashboard

WEB = Path(__file__).resolve().parent
STATIC = WEB / "static"
TEMPLATES = WEB / "templates"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
IMMUTABLE = "public, max-age=31536000, immutable"

router = APIRouter(include_in_schema=False)


@lru_cache
def static_version() -> str:
    """A hash of every static file: it changes whenever any of them does."""
    digest = hashlib.sha256()
    for path in sorted(p for p in STATIC.rglob("*") if p.is_file()):
        digest.update(path.relative_to(STATIC).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def static_prefix() -> str:
    """The URL prefix of the static files of this release."""
    return f"/static/{static_version()}"


@lru_cache
def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8").replace("{{static}}", static_prefix())


def page(name: str) -> HTMLResponse:
    """A page from templates/, with the security and caching headers every page gets."""
    return HTMLResponse(_template(name), headers=PAGE_HEADERS)


class ImmutableStaticFiles(StaticFiles):
    """Static files under a content-hashed prefix: cached for a year, never revalidated."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response


@router.get("/sign-in")
def sign_in_page() -> HTMLResponse:
    """Paste an API key; it is exchanged for a session cookie (POST /v1/session)."""
    return page("sign-in.html")


@router.get("/annotate")
def annotate_page() -> HTMLResponse:
    """The annotator page: claim, compare, label by keyboard; reviewers also get the review queue."""
    return page("annotate.html")


@router.get("/")
def home() -> RedirectResponse:
    """The annotator page is the service's front door in a browser."""
    return RedirectResponse("/annotate", status_code=307)


def mount_web(app: FastAPI) -> None:
    """Add the pages and their static files to the app."""
    app.include_router(router)
    app.include_router(dashboard.router)
    app.mount(static_prefix(), ImmutableStaticFiles(directory=STATIC), name="static")
