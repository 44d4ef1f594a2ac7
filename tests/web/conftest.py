"""Browser-test harness: one headless Chromium per test session, the app on a live loopback server per
module, and signed-in pages (tests of every page reuse these).

The browser is the system's Chromium (Debian `chromium`), driven by Playwright for Python; Playwright's own
browser download is never used. Without the browser the tests are skipped on a developer machine and fail
under CI (CI=true): a CI run that skipped them would pass while testing no page.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("REAL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _unavailable(reason: str) -> None:
    hint = "install it with: apt-get install -y chromium chromium-driver (make install-test does)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; browser tests cannot run under CI without it: {hint}", pytrace=False)
    pytest.skip(f"{reason}; {hint}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The system Chromium, headless, shared by every browser test of the session."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def live_url(database: Any) -> Iterator[str]:
    """The app served by uvicorn on a loopback port (tasks not run by it)."""
    from app.main import create_app
    from tests.conftest import ADMIN_KEY
    from tests.live_server import serve

    with serve(create_app(admin_key=ADMIN_KEY, start_runner=False)) as url:
        yield url


def make_key(
    db: Any, name: str, projects: list[Any], *, role: str = "annotator", reviewer: bool = False
) -> str:
    """A new API key (committed) for a principal working on these projects."""
    from app.auth import service as auth
    from app.auth.context import BOOTSTRAP_ADMIN
    from app.auth.models import Role
    from app.config import get_settings

    with db.session() as session:
        created = auth.create_key(
            session,
            get_settings(),
            BOOTSTRAP_ADMIN,
            role=Role(role),
            name=name,
            projects=projects,
            expires_at=None,
            reviewer=reviewer,
        )
        return created.key


@dataclass
class BrowserPage:
    """A page with what it logged: console errors and uncaught exceptions fail the test at teardown."""

    page: Any
    base_url: str
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        """Save a PNG under tests/artifacts/ (ignored by git)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def open_page(
    browser: Any, live_url: str, db: Any, recorded_tasks: Any
) -> Iterator[Callable[..., BrowserPage]]:
    """open_page(viewport=DESKTOP) → a fresh browser context and page on the live server."""
    contexts: list[Any] = []
    pages: list[BrowserPage] = []

    def opener(viewport: dict[str, int] | None = None) -> BrowserPage:
        context = browser.new_context(viewport=viewport or DESKTOP, base_url=live_url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        opened = BrowserPage(page, live_url)
        page.on("console", lambda message: message.type == "error" and opened.errors.append(message.text))
        page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))

        def on_dialog(dialog: Any) -> None:
            opened.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        pages.append(opened)
        return opened

    yield opener
    for context in contexts:
        context.close()
    for opened in pages:
        assert opened.errors == [], f"console errors on {opened.base_url}: {opened.errors}"


@pytest.fixture
def signed_in(open_page: Callable[..., BrowserPage]) -> Callable[..., BrowserPage]:
    """signed_in(key, next="/annotate") → a page signed in through the sign-in form, on its next page."""

    def sign_in(
        key: str, next_page: str = "/annotate", viewport: dict[str, int] | None = None
    ) -> BrowserPage:
        opened = open_page(viewport)
        page = opened.page
        page.goto(f"/sign-in?next={next_page}")
        page.locator("#key").fill(key)
        page.keyboard.press("Enter")
        page.wait_for_url(f"**{next_page}")
        return opened

    return sign_in
