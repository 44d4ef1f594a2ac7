"""The annotator page in headless Chromium against the live app and Postgres: sign in, label by keyboard,
skip, undo, progress, the labels' pair sides in the database, safe rendering, a lease lost while hidden."""

from __future__ import annotations

import hashlib
import statistics
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app.labels.outcome import pair_side
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response
from app.queue.models import Assignment, AssignmentStatus, Label
from tests.factories import make_project
from tests.web.conftest import ARTIFACTS, PHONE, BrowserPage, make_key


def add_pair(session: Any, project: Project, n: int, texts: tuple[str, str], prompt: Any = None) -> Pair:
    """One prompt with two responses and its pair, queued (the factories' shape, with chosen texts)."""
    row = Prompt(
        project_id=project.id,
        external_id=f"web-{n}",
        prompt=prompt if prompt is not None else f"Question number {n}?",
        content_sha256=hashlib.sha256(f"web-{n}".encode()).hexdigest(),
        status=PromptStatus.PAIRED,
    )
    row.responses = [
        Response(position=i, text=t, text_sha256=hashlib.sha256(t.encode()).hexdigest(), model=f"m{i}")
        for i, t in enumerate(texts)
    ]
    session.add(row)
    session.flush()
    a_id, b_id = sorted(r.id for r in row.responses)
    pair = Pair(
        project_id=project.id,
        prompt_id=row.id,
        response_a_id=a_id,
        response_b_id=b_id,
        strategy=project.strategy,
        similarity=0.5,
        priority=1.0 - n / 100,  # handed out in order
        status=PairStatus.QUEUED,
    )
    session.add(pair)
    session.flush()
    session.add(PairSlot(project_id=project.id, pair_id=pair.id, slot=0, priority=pair.priority))
    session.flush()
    return pair


def shown(page: Any) -> tuple[str, str, str]:
    """(assignment id, left text, right text) of the pair on screen."""
    page.wait_for_selector('main[data-state="labelling"]')
    return (
        page.locator("main").get_attribute("data-assignment"),
        page.locator("#response-a").inner_text().strip(),
        page.locator("#response-b").inner_text().strip(),
    )


def next_pair(page: Any, previous: str) -> None:
    page.wait_for_function(
        "id => document.querySelector('main').dataset.assignment !== id && "
        "document.querySelector('main').dataset.state === 'labelling'",
        arg=previous,
    )


def test_label_five_by_keyboard_skip_undo_and_see_progress(
    db: Any, signed_in: Callable[..., BrowserPage], capsys: Any
) -> None:
    with db.session() as session:
        project = make_project(session, name="Helpfulness", gold_rate=0.0)
        texts = {n: (f"Answer alpha {n}", f"Answer beta {n}") for n in range(9)}
        for n, pair_texts in texts.items():
            add_pair(
                session,
                project,
                n,
                pair_texts,
                prompt=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": f"Question **{n}**?"},
                ],
            )
        project_id = project.id
    key = make_key(db, "alice", [project_id])
    opened = signed_in(key)
    page = opened.page
    page.wait_for_selector('main[data-state="labelling"]')
    assert page.locator(".turn-system .role").first.inner_text().lower() == "system"
    assert page.locator(".turn-user strong").first.inner_text().isdigit()  # Markdown rendered
    opened.screenshot("annotate-desktop")

    keys = ["1", "ArrowRight", "2", "ArrowLeft", "1"]
    chosen: dict[str, str] = {}  # assignment id → the text the keypress chose
    for key_name in keys:
        assignment, left, right = shown(page)
        chosen[assignment] = left if key_name in ("1", "ArrowLeft") else right
        page.keyboard.press(key_name)
        next_pair(page, assignment)
    page.wait_for_function("() => document.querySelector('#progress').dataset.labels === '5'")

    skipped, _, _ = shown(page)
    page.keyboard.press("s")
    page.locator("#skip-reason").fill("not English")
    page.keyboard.press("Enter")
    next_pair(page, skipped)
    page.wait_for_function("() => document.querySelector('#progress').dataset.skips === '1'")

    page.keyboard.press("u")
    page.wait_for_function("() => document.querySelector('#progress').dataset.labels === '4'")
    assert "withdrawn" in page.locator("#notice").inner_text()

    with db.session() as session:
        labels = session.scalars(select(Label).where(Label.project_id == project_id)).all()
        assert len(labels) == 4
        for label in labels:
            pair = session.get_one(Pair, label.pair_id)
            winner_id = (
                pair.response_a_id
                if pair_side(label.choice, label.shown_first_response_id, pair.response_a_id) == "a"
                else pair.response_b_id
            )
            assert session.get_one(Response, winner_id).text == chosen[str(label.assignment_id)]
            assert label.annotator == "alice"
        assert {str(label.assignment_id) for label in labels} < set(chosen)
        withdrawn = session.scalars(
            select(Assignment).where(Assignment.status == AssignmentStatus.WITHDRAWN)
        ).one()
        assert str(withdrawn.id) == list(chosen)[-1]  # the last label was the one undone
        skip = session.get_one(Assignment, uuid.UUID(skipped))
        assert (skip.status, skip.skip_reason) == (AssignmentStatus.SKIPPED, "not English")

    timings = page.evaluate("window.__realTimings")
    assert len(timings) >= 6
    report = (
        f"label/skip keypress → next pair on screen over {len(timings)} swaps: "
        f"median {statistics.median(timings):.1f} ms, max {max(timings):.1f} ms"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "label-to-next-pair.txt").write_text(report + "\n")
    with capsys.disabled():
        print("\n" + report)  # noqa: T201 - the measured number is reported, not asserted

    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()

    phone = signed_in(key, viewport=PHONE)
    phone.page.wait_for_selector('main[data-state="labelling"]')
    left_box = phone.page.locator("#response-a").bounding_box()
    right_box = phone.page.locator("#response-b").bounding_box()
    assert right_box["y"] > left_box["y"] + left_box["height"] - 1  # stacked on a narrow screen
    phone.screenshot("annotate-phone")


def test_html_in_responses_renders_as_text(db: Any, signed_in: Callable[..., BrowserPage]) -> None:
    hostile = (
        "Here:\n\n<script>alert('script ran')</script>\n\n<img src=x onerror=\"alert('img ran')\">\n\n"
        "[click](javascript:alert('link ran'))\n\n```python\nprint('<b>code</b>')\n```"
    )
    with db.session() as session:
        project = make_project(session, name="Hostile", gold_rate=0.0)
        add_pair(
            session, project, 0, (hostile, "A plain answer."), prompt="<script>alert('prompt ran')</script>"
        )
        project_id = project.id
    opened = signed_in(make_key(db, "bob", [project_id]))
    page = opened.page
    page.wait_for_selector('main[data-state="labelling"]')
    texts = page.locator("#response-a").inner_text() + page.locator("#response-b").inner_text()
    assert "<script>alert('script ran')</script>" in texts
    assert "onerror" in texts
    assert "<script>" in page.locator("#prompt").inner_text()
    assert page.locator("#task script, #task img, #task [onerror]").count() == 0
    assert page.locator("#task pre code").count() == 1
    assert all(
        not (href or "").startswith("javascript:")
        for href in page.locator("#task a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    )
    page.wait_for_timeout(200)  # anything that could run has had its turn
    assert opened.dialogs == []
    opened.screenshot("annotate-hostile-text")


def test_a_lease_lost_while_hidden_says_so_and_the_next_claim_works(
    db: Any, signed_in: Callable[..., BrowserPage]
) -> None:
    with db.session() as session:
        # Below the API's 10 s minimum on purpose: the test waits out the lease.
        project = make_project(session, name="Short leases", gold_rate=0.0, lease_ttl_seconds=2)
        for n in range(2):
            add_pair(session, project, n, (f"left {n}", f"right {n}"))
        project_id = project.id
    opened = signed_in(make_key(db, "carol", [project_id]))
    page = opened.page
    first, _, _ = shown(page)
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_selector('main[data-state="lease_lost"]', timeout=6_000)
    page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    assert page.locator("#state-title").inner_text() == "Lease lost"
    opened.screenshot("annotate-lease-lost")
    with db.session() as session:
        lease = session.get_one(Assignment, uuid.UUID(first))
        assert session.scalars(select(Label)).first() is None
        assert lease.status == AssignmentStatus.ACTIVE  # expired by time, nothing was stored for it

    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector('main').dataset.state === 'labelling' && "
        "document.querySelector('main').dataset.assignment !== id",
        arg=first,
    )
    again = page.locator("main").get_attribute("data-assignment")
    page.keyboard.press("t")
    page.wait_for_function("() => document.querySelector('#progress').dataset.labels === '1'")
    with db.session() as session:
        label = session.scalars(select(Label)).one()
        assert (str(label.assignment_id), label.choice) == (again, "tie")
    # The expired lease's renew or release is answered 409, which Chromium logs as a failed resource load:
    # expected here (the page handles it), so it is the one console error this test lets pass.
    page.wait_for_timeout(300)
    opened.errors[:] = [e for e in opened.errors if "status of 409 (Conflict)" not in e]
