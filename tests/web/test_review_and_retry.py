"""The annotator page in headless Chromium: a reviewer's verdict from the review tab, and a label whose answer
is lost on the network sent again with the same Idempotency-Key, stored once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app.pairs.models import Pair, PairReview
from app.prompts.models import Response
from app.queue.models import Label
from tests.exports.helpers import at, label
from tests.factories import make_project
from tests.web.conftest import BrowserPage, make_key
from tests.web.test_annotate import add_pair, shown


def test_a_reviewer_decides_a_split_pair_from_the_review_tab(
    db: Any, signed_in: Callable[..., BrowserPage]
) -> None:
    with db.session() as session:
        project = make_project(session, name="Review me", gold_rate=0.0, annotations_per_pair=2)
        pair = add_pair(session, project, 0, ("The left answer.", "The right answer."))
        label(session, pair, "ann1", "a", at(1))
        label(session, pair, "ann2", "b", at(2))
        pair.labels_count, pair.outcome, pair.agreement = 2, "undecided", 0.5
        project_id, pair_id = project.id, pair.id
        a_text = session.get_one(Response, pair.response_a_id).text
    opened = signed_in(make_key(db, "rita", [project_id], reviewer=True))
    page = opened.page
    page.locator("#mode-review").click()
    page.wait_for_selector('main[data-state="review"]')
    assert page.locator("#review-label-list li").count() == 2
    assert sorted(page.locator("#review-label-list li").all_inner_texts()) == ["A", "B"]
    # The review shows the pair in pair terms: response_a on the left, labels by pair side.
    assert page.locator("#response-a").inner_text().strip() == a_text
    opened.screenshot("annotate-review")
    page.keyboard.press("2")  # B is better
    page.wait_for_selector('main[data-state="review_empty"]')
    with db.session() as session:
        reviewed = session.get_one(Pair, pair_id)
        assert reviewed.review_verdict == "b"
        assert session.scalars(select(PairReview.reviewer)).all() == ["rita"]


def test_a_label_whose_answer_is_lost_is_sent_again_and_stored_once(
    db: Any, signed_in: Callable[..., BrowserPage]
) -> None:
    with db.session() as session:
        project = make_project(session, name="Flaky network", gold_rate=0.0)
        for n in range(2):
            add_pair(session, project, n, (f"left {n}", f"right {n}"))
        project_id = project.id
    opened = signed_in(make_key(db, "dave", [project_id]))
    page = opened.page
    lost: list[str] = []

    def lose_first_answer(route: Any) -> None:
        if not lost:
            route.fetch()  # the server stores the label...
            lost.append(route.request.headers.get("idempotency-key", ""))
            route.abort("failed")  # ...and its answer never reaches the page
        else:
            lost.append(route.request.headers.get("idempotency-key", ""))
            route.continue_()

    page.route("**/v1/assignments/*/label", lose_first_answer)
    first, _, _ = shown(page)
    page.keyboard.press("1")
    page.wait_for_function("() => document.querySelector('#progress').dataset.labels === '1'", timeout=15_000)
    # The stored label can show in the progress before the route handler's fetch has returned (a loaded
    # machine): wait, letting Playwright run the handlers, until the page's retry has gone through the route.
    deadline = time.monotonic() + 15
    while len(lost) < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert len(lost) >= 2
    assert lost[0]
    assert set(lost) == {lost[0]}  # every try carried the same Idempotency-Key
    with db.session() as session:
        labels = session.scalars(select(Label)).all()
        assert [str(x.assignment_id) for x in labels] == [first]
    # The aborted request is the one console error this test provokes.
    opened.errors[:] = [e for e in opened.errors if "ERR_FAILED" not in e]
