"""/docs in a real headless browser with every off-server request refused: Swagger UI renders every
operation from the assets this server ships (app/apidocs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.web.conftest import BrowserPage


def test_the_docs_render_every_operation_offline(open_page: Callable[..., BrowserPage]) -> None:
    opened = open_page()
    page = opened.page
    off_server: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(opened.base_url):
            route.continue_()
        else:
            off_server.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto("/docs")
    page.wait_for_selector(".opblock-summary-path")
    schema = page.request.get("/v1/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    assert page.locator(".opblock").count() == operations
    assert page.locator('.opblock-summary-path[data-path="/v1/simulations/{simulation_id}"]').count() == 1
    assert page.locator(".info .title").inner_text().startswith("real-align")
    opened.screenshot("docs")
    assert off_server == []
