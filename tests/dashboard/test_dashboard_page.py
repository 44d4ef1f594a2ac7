"""The dashboard page in headless Chromium against a live server: sign in with a data-team key, see every
chart drawn, and read the same numbers as the JSON API; at 1280×800 and 390×844, with no console errors.

Screenshots go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.active.models import RewardModelFit
from app.api.clock import get_now
from app.db.base import utcnow
from app.quality.tasks import aggregate_project
from tests.exports.helpers import run_export
from tests.live_server import serve
from tests.selection.test_selection_service import ingest_and_embed, load

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
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
PAGE_WEIGHT_LIMIT = 300_000


def number(text: str | None) -> float:
    """The first number in a text ("1,234 of 60" → 1234)."""
    found = re.search(r"-?[\d,]+(?:\.\d+)?", text or "")
    assert found, text
    return float(found.group().replace(",", ""))


@pytest.fixture
def world(client: Any, db: Any, recorded_tasks: list[Any]) -> dict[str, Any]:
    """A data team's project of 20 real prompts (4 responses each, embedded by the real model), labelled by
    three annotators over the last three hours through the API, with a live lease, an export, a schedule
    and two reward-model fits; and an annotator's key."""
    team = client.post("/v1/keys", json={"role": "data_team", "name": "team"}).json()
    project = client.post(
        "/v1/projects",
        json={"name": "Dashboard <b>demo</b>", "budget": 60, "annotations_per_pair": 2, "gold_rate": 0.0},
        headers={"Authorization": f"Bearer {team['key']}"},
    ).json()
    ingest_and_embed(client, project["id"], load("alpaca_eval_20x4.jsonl"), recorded_tasks)
    start = utcnow() - timedelta(hours=3)
    choices = ["a", "a", "b", "a", "tie", "a", "b", "b", "a", "both_bad"]
    for n in range(24):
        moment = start + timedelta(minutes=7 * n)
        client.app.dependency_overrides[get_now] = lambda moment=moment: moment
        who = f"ann{n % 3 + 1}"
        claimed = client.post(f"/v1/projects/{project['id']}/queue/claim", json={"annotator": who})
        assert claimed.status_code == 200, claimed.text
        stored = client.post(
            f"/v1/assignments/{claimed.json()['assignment_id']}/label", json={"choice": choices[n % 10]}
        )
        assert stored.status_code == 201, stored.text
    client.app.dependency_overrides.pop(get_now, None)
    live = client.post(f"/v1/projects/{project['id']}/queue/claim", json={"annotator": "ann-live"})
    assert live.status_code == 200
    annotator = client.post(
        "/v1/keys", json={"role": "annotator", "name": "ann1", "projects": [project["id"]]}
    ).json()
    export = run_export(db, project["id"])
    assert (
        client.put(f"/v1/projects/{project['id']}/export-schedule", json={"every_seconds": 3600}).status_code
        == 200
    )
    with db.session() as session:
        for version, labels, accuracy in [(1, 10, 0.55), (2, 20, 0.68), (3, 24, 0.71)]:
            session.add(
                RewardModelFit(
                    project_id=project["id"],
                    version=version,
                    fitted_at=start + timedelta(hours=version / 2),
                    embedding_model=project["embedding_model"],
                    features="diff",
                    l2=1.0,
                    pairs_used=labels // 2,
                    labels_used=labels,
                    cv_folds=5,
                    cv_accuracy=accuracy,
                    cv_log_loss=0.65,
                    dim=384,
                    weights=b"\x00" * 4 * 384,
                )
            )
    aggregate_project(project["id"])
    return {"project": project, "team_key": team["key"], "annotator_key": annotator["key"], "export": export}


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Watched:
    """A page whose console errors, uncaught exceptions and response sizes are recorded."""

    def __init__(self, browser: Any, base: str, width: int, height: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.sizes: dict[str, int] = {}
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("response", self._sized)
        self.base = base

    def _sized(self, response: Any) -> None:
        if "/v1/" not in response.url:
            try:
                self.sizes[response.url] = len(response.body())
            except Exception:  # a redirect has no body
                self.sizes[response.url] = 0

    def sign_in(self, key: str) -> None:
        self.page.goto(self.base + "/dashboard")
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()


def api(client: Any, key: str, path: str) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_dashboard_draws_the_apis_numbers(client: Any, world: dict[str, Any], browser: Any) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    project, key = world["project"], world["team_key"]
    base_path = f"/v1/projects/{project['id']}/dashboard"
    with serve(client.app) as base:
        watched = Watched(browser, base, 1280, 800)
        page = watched.page
        watched.sign_in(key)
        page.wait_for_selector("body[data-loaded='numbers'][data-similarity='loaded']", timeout=30_000)
        overview = api(client, key, base_path)
        timeline = api(client, key, base_path + "/timeline")
        similarity = api(client, key, base_path + "/similarity")

        # The project is named as text (no markup from data), and every chart has data drawn in it.
        assert page.locator("#project option:checked").inner_text() == "Dashboard <b>demo</b>"
        assert page.locator("[data-chart='chart-burn'] path[data-series]").count() == 2
        assert page.locator("[data-chart='chart-rate'] rect[data-series]").count() == sum(
            1 for v in timeline["labels_per_hour"] if v > 0
        )
        assert page.locator("[data-chart='chart-agreement'] circle").count() >= 2
        assert page.locator("[data-chart='chart-reward'] circle").count() == 3
        bars = page.locator("[data-chart='chart-similarity'] rect[data-series]")
        chosen = [
            int(v)
            for v in bars.evaluate_all(
                "rs => rs.filter(r => r.dataset.series.startsWith('Chosen')).map(r => r.dataset.value)"
            )
        ]
        everything = [
            int(v)
            for v in bars.evaluate_all(
                "rs => rs.filter(r => r.dataset.series.startsWith('All')).map(r => r.dataset.value)"
            )
        ]
        assert sum(chosen) == similarity["selected_pairs"] == 20
        assert sum(everything) == similarity["candidate_pairs"]
        assert sorted(chosen) == sorted(c for c in similarity["selected"] if c)

        # The tiles and tables hold the API's numbers.
        def tile(metric: str) -> str:
            return str(page.locator(f"[data-metric='{metric}']").inner_text())

        stats = overview["stats"]
        assert number(tile("labels")) == stats["labels"] == 24
        assert number(tile("budget-remaining")) == stats["budget_remaining"] == 36
        assert number(tile("pairs-waiting")) == overview["queue"]["pairs_waiting"]
        assert number(tile("live-leases")) == overview["leases"]["live"] == 1
        assert number(tile("alpha")) == round(overview["quality"]["krippendorff_alpha"], 3)
        assert number(tile("labels-per-hour")) == round(timeline["labels_per_hour"][-1], 1)
        rows = page.locator("#annotators tbody tr")
        assert rows.count() == len(overview["annotators"]) == 3
        assert [int(number(rows.nth(n).locator("td").nth(1).inner_text())) for n in range(3)] == [
            a["labels"] for a in overview["annotators"]
        ]
        assert page.locator("#leases tbody tr td").first.inner_text() == "ann-live"
        burn_rows = page.locator("#chart-burn table tbody tr")
        assert burn_rows.count() == len(timeline["starts"])
        assert (
            int(number(burn_rows.last.locator("td").nth(1).text_content()))
            == timeline["cumulative_labels"][-1]
        )
        similarity_rows = page.locator("#chart-similarity table tbody tr").all()
        assert (
            sum(int(number(r.locator("td").nth(1).text_content())) for r in similarity_rows)
            == (similarity["selected_pairs"])
        )

        # The export's download link works with the session cookie alone.
        link = page.get_by_role("link", name="data").first
        assert link.get_attribute("href") == overview["exports"][0]["file_url"]
        downloaded = page.request.get(base + str(link.get_attribute("href")))
        assert downloaded.status == 200
        assert len(downloaded.body().splitlines()) == world["export"].rows

        # Keyboard: signing in hands focus to the project picker; on a fresh load the skip link comes
        # first, then the picker.
        assert page.evaluate("document.activeElement.id") == "project"
        page.reload()
        page.wait_for_selector("body[data-loaded='numbers'][data-similarity='loaded']", timeout=30_000)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "project"
        page.screenshot(path=str(ARTIFACTS / "dashboard-1280x800.png"), full_page=True)

        weight = sum(watched.sizes.values())
        print(f"dashboard page weight: {weight} bytes over {len(watched.sizes)} files")  # noqa: T201
        assert weight < PAGE_WEIGHT_LIMIT
        assert watched.errors == []

        # A phone: one column, nothing wider than the screen.
        phone = Watched(browser, base, 390, 844)
        phone.context.add_cookies(watched.context.cookies())
        phone.page.goto(base + f"/dashboard?project={project['id']}")
        phone.page.wait_for_selector("body[data-loaded='numbers'][data-similarity='loaded']", timeout=30_000)
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.page.locator("[data-chart='chart-similarity'] rect[data-series]").count() > 0
        phone.page.screenshot(path=str(ARTIFACTS / "dashboard-390x844.png"), full_page=True)
        assert phone.errors == []

        # Signing out asks for a key again.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#sign-in:not([hidden])")
        assert watched.errors == []


def test_an_annotator_key_is_sent_to_the_annotator_page(
    client: Any, world: dict[str, Any], browser: Any
) -> None:
    with serve(client.app) as base:
        watched = Watched(browser, base, 1280, 800)
        watched.sign_in(world["annotator_key"])
        notice = watched.page.locator("#not-allowed")
        notice.wait_for(state="visible")
        assert notice.get_by_role("link").get_attribute("href") == "/annotate"
        assert watched.page.locator("#board").is_hidden()
        assert watched.errors == []


def test_a_wrong_key_is_refused_in_the_form(client: Any, db: Any, browser: Any) -> None:
    with serve(client.app) as base:
        watched = Watched(browser, base, 1280, 800)
        watched.sign_in("real_not_a_key_0123456789")
        error = watched.page.locator("#sign-in-error")
        error.wait_for(state="visible")
        watched.page.wait_for_function("document.getElementById('sign-in-error').textContent.length > 0")
        assert "not accepted" in error.inner_text()
        assert watched.page.get_by_label("API key").input_value() == ""
