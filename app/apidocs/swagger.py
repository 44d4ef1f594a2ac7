"""``/docs`` without a CDN: Swagger UI's script, stylesheet and icon are served from this package.

FastAPI's own ``/docs`` page loads Swagger UI from cdn.jsdelivr.net and its icon from fastapi.tiangolo.com, so
on a machine without internet access the page stays blank. Here the page is FastAPI's own
(``get_swagger_ui_html``) pointed at ``/docs/assets/``, a static mount of ``swagger_ui/`` (swagger-ui-dist,
vendored from npm; ``swagger_ui/README.md`` says which version and how to update it). The online validator
badge is off too (it would call validator.swagger.io).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).resolve().parent / "swagger_ui"
DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"


def install(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from local assets (create the app with ``docs_url=None``)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the docs page needs the OpenAPI schema; create the app with an openapi_url")
    parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters=parameters,
        )

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="swagger-ui-assets")
