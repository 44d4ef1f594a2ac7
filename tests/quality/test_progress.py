"""An annotator's own progress (labels today, skips, gold accuracy) and a pair as a reviewer reads it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from app.db.base import utcnow
from app.pairs.models import Pair
from tests.factories import grant_annotator, make_pairs, make_project


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pair_side_choice(claimed: dict[str, Any], pair: Pair, side: str) -> str:
    """The screen choice that names the pair's `side` response in this claim's order."""
    first_is_a = uuid.UUID(claimed["response_a"]["id"]) == pair.response_a_id
    return "a" if (side == "a") == first_is_a else "b"


def test_progress_counts_todays_labels_skips_and_gold(client: Any, db: Any, session: Any) -> None:
    with db.session() as arrange:
        project = make_project(arrange, name="P", gold_rate=1.0)
        pairs = make_pairs(arrange, project, 4)
        project_id, gold_pair = project.id, pairs[0].id
    key = client.post(
        "/v1/keys", json={"role": "annotator", "name": "ann", "projects": [str(project_id)]}
    ).json()["key"]
    assert (
        client.put(f"/v1/projects/{project_id}/pairs/{gold_pair}/gold", json={"answer": "b"}).status_code
        == 200
    )
    first = client.post(f"/v1/projects/{project_id}/queue/claim", headers=bearer(key)).json()
    pair = session.get(Pair, gold_pair)
    assert {first["response_a"]["id"], first["response_b"]["id"]} == {
        str(pair.response_a_id),
        str(pair.response_b_id),
    }
    wrong = pair_side_choice(first, pair, "a")  # the gold answer is b
    assert (
        client.post(
            f"/v1/assignments/{first['assignment_id']}/label", json={"choice": wrong}, headers=bearer(key)
        ).status_code
        == 201
    )
    second = client.post(f"/v1/projects/{project_id}/queue/claim", headers=bearer(key)).json()
    assert (
        client.post(
            f"/v1/assignments/{second['assignment_id']}/label", json={"choice": "tie"}, headers=bearer(key)
        ).status_code
        == 201
    )
    third = client.post(f"/v1/projects/{project_id}/queue/claim", headers=bearer(key)).json()
    assert (
        client.post(
            f"/v1/assignments/{third['assignment_id']}/skip",
            json={"reason": "unreadable"},
            headers=bearer(key),
        ).status_code
        == 200
    )

    today = client.get(f"/v1/projects/{project_id}/progress", headers=bearer(key))
    assert today.status_code == 200, today.text
    body = today.json()
    assert body["annotator"] == "ann"
    assert (body["labels_since"], body["skips_since"], body["labels_total"]) == (2, 1, 2)
    assert body["gold_enabled"] is True
    assert (body["gold_answered"], body["gold_correct"], body["gold_accuracy"]) == (1, 0, 0.0)

    later = (utcnow() + timedelta(hours=1)).isoformat()
    tomorrow = client.get(f"/v1/projects/{project_id}/progress", params={"since": later}, headers=bearer(key))
    assert (tomorrow.json()["labels_since"], tomorrow.json()["labels_total"]) == (0, 2)
    naive = client.get(
        f"/v1/projects/{project_id}/progress", params={"since": "2024-01-01T00:00:00"}, headers=bearer(key)
    )
    assert naive.status_code == 422
    assert naive.json()["errors"][0]["field"] == "query.since"


def test_a_reviewer_reads_the_pair_with_its_labels_in_pair_terms(client: Any, db: Any, session: Any) -> None:
    with db.session() as arrange:
        project = make_project(arrange, name="P", gold_rate=0.0, annotations_per_pair=2)
        make_pairs(arrange, project, 1)
        project_id = project.id
    sides = []
    for name, side in (("x", "a"), ("y", "b")):
        grant_annotator(name, project_id)
        claimed = client.post(f"/v1/projects/{project_id}/queue/claim", json={"annotator": name}).json()
        pair = session.get(Pair, client.get(f"/v1/projects/{project_id}/pairs").json()["items"][0]["id"])
        choice = pair_side_choice(claimed, pair, side)
        stored = client.post(
            f"/v1/assignments/{claimed['assignment_id']}/label", json={"choice": choice, "rationale": name}
        )
        assert stored.status_code == 201
        sides.append(side)
    read = client.get(f"/v1/projects/{project_id}/pairs/{pair.id}/review")
    assert read.status_code == 200, read.text
    body = read.json()
    assert [(label["side"], label["rationale"]) for label in body["labels"]] == [("a", "x"), ("b", "y")]
    assert body["response_a"]["id"] == str(pair.response_a_id)
    assert body["outcome"] == "undecided"
    assert body["prompt"] == "Prompt number 0"
