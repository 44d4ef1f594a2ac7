"""The dashboard page in headless Chromium against the live app and Postgres (tests/web's harness): a data
team's key signs in on the shared sign-in page and lands here, every chart is drawn, and the page's numbers
are the JSON API's; at 1280×800 and 390×844, with no console errors (the harness fails a test on any).

Screenshots go to tests/artifacts/ (ignored by git).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from app.active.models import RewardModelFit
from app.api.clock import get_now
from app.db.base import utcnow
from app.quality.tasks import aggregate_project
from tests.exports.helpers import run_export
from tests.factories import grant_annotator
from tests.selection.test_selection_service import ingest_and_embed, load
from tests.web.conftest import ARTIFACTS, DESKTOP, PHONE, BrowserPage

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

PAGE_WEIGHT_LIMIT = 300_000
LOADED = "body[data-loaded='numbers'][data-similarity='loaded']"


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
    for who in ("ann1", "ann2", "ann3", "ann-live"):
        grant_annotator(who, project["id"])
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


def api(client: Any, key: str, path: str) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return response.json()


def page_weight(opened: BrowserPage) -> dict[str, int]:
    """Bytes of every non-API resource the page loaded (the page, its script and style)."""
    entries = opened.page.evaluate(
        "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => [e.name, e.decodedBodySize])"
    )
    return {name: int(size) for name, size in entries if "/v1/" not in name}


def sign_in_without_next(
    open_page: Callable[..., BrowserPage], key: str, viewport: dict[str, int]
) -> BrowserPage:
    """The shared sign-in page with no page asked for: a data team's key lands on the dashboard."""
    opened = open_page(viewport)
    opened.page.goto("/sign-in")
    opened.page.locator("#key").fill(key)
    opened.page.keyboard.press("Enter")
    opened.page.wait_for_url("**/dashboard*")
    return opened


def test_the_dashboard_draws_the_apis_numbers(
    client: Any, world: dict[str, Any], open_page: Callable[..., BrowserPage]
) -> None:
    project, key = world["project"], world["team_key"]
    base_path = f"/v1/projects/{project['id']}/dashboard"
    opened = sign_in_without_next(open_page, key, DESKTOP)
    page = opened.page
    page.wait_for_selector(LOADED, timeout=30_000)
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
    assert sum(everything) == similarity["candidate_pairs"] == 120
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
    assert number(tile("kappa")) == round(overview["quality"]["fleiss_kappa"]["kappa"], 3)
    assert number(tile("labels-per-hour")) == round(timeline["labels_per_hour"][-1], 1)
    rows = page.locator("#annotators tbody tr")
    assert rows.count() == len(overview["annotators"]) == 3
    assert [int(number(rows.nth(n).locator("td").nth(1).inner_text())) for n in range(3)] == [
        a["labels"] for a in overview["annotators"]
    ]
    assert page.locator("#leases tbody tr td").first.inner_text() == "ann-live"
    burn_rows = page.locator("#chart-burn table tbody tr")
    assert burn_rows.count() == len(timeline["starts"])
    last_cumulative = burn_rows.last.locator("td").nth(1).text_content()
    assert int(number(last_cumulative)) == timeline["cumulative_labels"][-1]
    similarity_rows = page.locator("#chart-similarity table tbody tr").all()
    chosen_in_table = sum(int(number(r.locator("td").nth(1).text_content())) for r in similarity_rows)
    assert chosen_in_table == similarity["selected_pairs"]

    # The export's download link works with the session cookie alone.
    link = page.get_by_role("link", name="data").first
    assert link.get_attribute("href") == overview["exports"][0]["file_url"]
    downloaded = page.request.get(opened.base_url + str(link.get_attribute("href")))
    assert downloaded.status == 200
    assert len(downloaded.body().splitlines()) == world["export"].rows

    # Keyboard: the skip link comes first, then the project picker.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "project"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-1280x800.png"), full_page=True)
    weight = page_weight(opened)
    print(f"dashboard page weight: {sum(weight.values())} bytes: {weight}")  # noqa: T201
    assert 0 < sum(weight.values()) < PAGE_WEIGHT_LIMIT

    # Signing out goes back to the sign-in page, which brings the key back here.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/sign-in?next=/dashboard")


def test_a_phone_gets_one_column(
    client: Any, world: dict[str, Any], signed_in: Callable[..., BrowserPage]
) -> None:
    project = world["project"]
    opened = signed_in(world["team_key"], f"/dashboard?project={project['id']}", PHONE)
    page = opened.page
    page.wait_for_selector(LOADED, timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator("[data-chart='chart-similarity'] rect[data-series]").count() > 0
    lefts = page.locator(".grid > .card").evaluate_all("cs => cs.map(c => c.getBoundingClientRect().left)")
    assert len(set(lefts)) == 1  # stacked
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-390x844.png"), full_page=True)


def test_without_a_session_the_page_asks_for_a_key(
    world: dict[str, Any], open_page: Callable[..., BrowserPage]
) -> None:
    opened = open_page(DESKTOP)
    opened.page.goto(f"/dashboard?project={world['project']['id']}")
    opened.page.wait_for_url("**/sign-in?next=*")
    opened.page.locator("#key").fill(world["team_key"])
    opened.page.keyboard.press("Enter")
    opened.page.wait_for_url(f"**/dashboard?project={world['project']['id']}")
    opened.page.wait_for_selector(LOADED, timeout=30_000)


def test_an_annotator_key_is_sent_to_the_annotator_page(
    world: dict[str, Any], signed_in: Callable[..., BrowserPage]
) -> None:
    opened = signed_in(world["annotator_key"], "/dashboard")
    notice = opened.page.locator("#not-allowed")
    notice.wait_for(state="visible")
    assert notice.get_by_role("link", name="the annotator page").get_attribute("href") == "/annotate"
    assert opened.page.locator("#board").is_hidden()
