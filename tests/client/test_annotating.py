"""Annotating from Python: claim, label, skip, release and renew with real_align.Client against a real
`real-align api` process (Postgres, in-process tasks, the real embedding model)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.queue.models import Assignment as AssignmentRow
from app.queue.models import Label as LabelRow
from real_align import (
    AlreadyLabeledError,
    Assignment,
    Client,
    IdempotencyKeyReusedError,
    LeaseExpiredError,
    NothingToClaim,
)
from tests.conftest import ADMIN_KEY

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

# Six prompts with two clearly different responses each: one pair per prompt.
PROMPTS = [
    {"external_id": f"q{n}", "prompt": f"Question {n}: name a colour.", "responses": [colour, text]}
    for n, (colour, text) in enumerate(
        [
            ("Red.", "I would rather talk about the weather in Lisbon today."),
            ("Blue.", "Seventeen bicycles were parked outside the station."),
            ("Green.", "The recipe needs two cups of flour and an egg."),
            ("Yellow.", "Quantum computers use qubits instead of bits."),
            ("Purple.", "My favourite football club lost again on Sunday."),
            ("Orange.", "Please restart the router and try once more."),
        ]
    )
]


@pytest.fixture(scope="module")
def projects(base_url: str) -> dict[str, uuid.UUID]:
    """`main` (five prompts) and `tiny` (one prompt, a budget of one label), embedded and paired."""
    with Client(base_url, ADMIN_KEY) as admin:
        main = admin.create_project("annotating")
        tiny = admin.create_project("annotating-budget", budget=1)
        admin.ingest(main.id, PROMPTS[:5])
        admin.ingest(tiny.id, PROMPTS[5:])
        for project in (main, tiny):
            stats = admin.wait_until_ready(project.id, timeout=240, progress=False)
            assert stats.pairs == stats.prompts
    return {"main": main.id, "tiny": tiny.id}


@pytest.fixture(scope="module")
def judge_key(admin: httpx.Client, projects: dict[str, uuid.UUID]) -> str:
    """An annotator key for both projects (as an LLM judge would hold one)."""
    created = admin.post(
        "/v1/keys",
        json={"role": "annotator", "name": "llm-judge", "projects": [str(p) for p in projects.values()]},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture(scope="module")
def judge(base_url: str, judge_key: str) -> Iterator[Client]:
    with Client(base_url, judge_key, retries=2) as client:
        yield client


def labels_of(database: Any, assignment_id: uuid.UUID) -> int:
    with database.session() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(LabelRow).where(LabelRow.assignment_id == assignment_id)
            )
            or 0
        )


def claimed(judge: Client, project_id: uuid.UUID) -> Assignment:
    assignment = judge.claim(project_id)
    assert isinstance(assignment, Assignment), assignment
    return assignment


class _LoseFirstLabelAnswer(httpx.BaseTransport):
    """Sends every request; drops the server's answer to the first label, as a broken connection would."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.label_requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith("/label") and request.method == "POST":
            self.label_requests.append(request)
            if len(self.label_requests) == 1:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class TestAnnotating:
    def test_claim_and_label_by_side(
        self, judge: Client, projects: dict[str, uuid.UUID], database: Any
    ) -> None:
        assignment = claimed(judge, projects["main"])
        assert assignment.project_id == projects["main"]
        assert assignment.annotator == "llm-judge"
        assert assignment.prompt.startswith("Question")
        assert assignment.response_a.id != assignment.response_b.id
        label = judge.label(assignment, "b", confidence=4, rationale="b answers the question")
        assert (label.choice, label.confidence, label.replayed) == ("b", 4, False)
        assert label.assignment_id == assignment.id
        assert label.winner_response_id == assignment.response_b.id
        assert labels_of(database, assignment.id) == 1

    def test_label_by_the_winning_response(self, judge: Client, projects: dict[str, uuid.UUID]) -> None:
        assignment = claimed(judge, projects["main"])
        # Whichever screen position the colour landed in, the label names that side.
        colour = min((assignment.response_a, assignment.response_b), key=lambda r: len(r.text))
        label = judge.label(assignment, colour)
        assert label.winner_response_id == colour.id
        assert label.choice == assignment.side_of(colour)

    def test_a_retried_label_is_stored_once(
        self, base_url: str, judge_key: str, judge: Client, projects: dict[str, uuid.UUID], database: Any
    ) -> None:
        assignment = claimed(judge, projects["main"])
        # The server stores the label but its answer is lost; the client sends it again with the same key.
        transport = _LoseFirstLabelAnswer()
        with Client(base_url, judge_key, retries=2, transport=transport) as flaky:
            label = flaky.label(assignment, "a")
        first, retry = transport.label_requests
        assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]
        assert first.headers["Idempotency-Key"].startswith("real-align-python-")
        assert label.replayed
        assert labels_of(database, assignment.id) == 1
        # The same key again is the same label; the same key with another label, or another label, is refused.
        again = judge.label(assignment, "a", idempotency_key=first.headers["Idempotency-Key"])
        assert (again.id, again.replayed) == (label.id, True)
        with pytest.raises(IdempotencyKeyReusedError):
            judge.label(assignment, "b", idempotency_key=first.headers["Idempotency-Key"])
        with pytest.raises(AlreadyLabeledError):
            judge.label(assignment, "tie")
        assert labels_of(database, assignment.id) == 1

    def test_renew_release_and_skip(
        self, judge: Client, projects: dict[str, uuid.UUID], database: Any
    ) -> None:
        assignment = claimed(judge, projects["main"])
        renewed = judge.renew(assignment)
        assert renewed.status == "active"
        assert renewed.lease_expires_at >= assignment.lease_expires_at
        assert judge.renew(assignment).renewals_left == renewed.renewals_left - 1

        released = judge.release(assignment)
        assert released.status == "released"
        assert judge.release(assignment).status == "released"  # safe to repeat
        with pytest.raises(LeaseExpiredError) as lost:
            judge.renew(assignment)
        assert (lost.value.status, lost.value.code) == (409, "lease_expired")
        with pytest.raises(LeaseExpiredError):
            judge.label(assignment, "a")

        # The released pair comes back; skip it, with a reason.
        again = claimed(judge, projects["main"])
        skipped = judge.skip(again, reason="both off-topic")
        assert skipped.status == "skipped"
        with database.session() as session:
            row = session.get_one(AssignmentRow, again.id)
            assert (row.status, row.skip_reason) == ("skipped", "both off-topic")

    def test_the_loop_ends_when_nothing_is_left_and_says_why(
        self, judge: Client, projects: dict[str, uuid.UUID]
    ) -> None:
        labelled = [judge.label(a, "a").pair_id for a in judge.assignments(projects["main"])]
        assert labelled  # the pairs the earlier tests left (the skipped one never comes back)
        nothing = judge.claim(projects["main"])
        assert isinstance(nothing, NothingToClaim)
        assert not nothing
        assert (nothing.reason, nothing.retry_after) == ("empty", 30)

    def test_a_spent_budget_is_the_reason(self, judge: Client, projects: dict[str, uuid.UUID]) -> None:
        judge.label(claimed(judge, projects["tiny"]), "tie")
        nothing = judge.claim(projects["tiny"])
        assert isinstance(nothing, NothingToClaim)
        assert nothing.reason == "budget_spent"
