"""/docs works offline: the page's Swagger UI script, stylesheet and icon come from this server."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.main import create_app

ASSETS = Path(__file__).resolve().parents[2] / "app" / "apidocs" / "swagger_ui"
CONTENT_TYPES = {
    ".js": ("application/javascript", "text/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
}


def asset_urls(html: str) -> list[str]:
    """Every script, stylesheet and icon the page loads."""
    return re.findall(r'<(?:script|link)[^>]*\s(?:src|href)="([^"]+)"', html)


def test_the_docs_page_loads_its_assets_from_this_server(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = asset_urls(page.text)
    assert sorted(urls) == [
        "/docs/assets/favicon-32x32.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
    ]
    # Nothing else on the page points off this server: no CDN, and no online validator.
    assert not re.search(r"https?://", page.text)
    assert '"validatorUrl": null' in page.text
    assert "url: '/v1/openapi.json'" in page.text
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200, url
        media_type = asset.headers["content-type"].split(";")[0]
        assert media_type in CONTENT_TYPES[Path(url).suffix], (url, media_type)
        assert asset.content == (ASSETS / Path(url).name).read_bytes()
    bundle = client.get("/docs/assets/swagger-ui-bundle.js").content
    assert b"SwaggerUIBundle" in bundle
    # The digest README.md records for the vendored file: the file is swagger-ui-dist's, unchanged.
    digest = hashlib.sha256(bundle).hexdigest()
    assert digest in (ASSETS / "README.md").read_text()


def test_only_the_vendored_files_are_served(client: TestClient) -> None:
    assert client.get("/docs/assets/../swagger.py").status_code == 404
    assert client.get("/docs/assets/missing.js").status_code == 404


def test_prod_serves_no_docs(db: Any, override_settings: Any) -> None:
    override_settings(env="prod", secret_key="s" * 40)
    with TestClient(create_app(start_runner=False)) as prod:
        assert prod.get("/docs").status_code == 404
        assert prod.get("/docs/assets/swagger-ui.css").status_code == 404
        assert prod.get("/v1/openapi.json").status_code == 200
