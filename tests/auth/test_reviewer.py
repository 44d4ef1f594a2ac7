"""The reviewer flag: annotators with it work their projects' review queue, and gain nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.pairs.models import PairReview
from tests.factories import make_pairs, make_project


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def world(client: Any, session: Any, recorded_tasks: list[Any]) -> dict[str, Any]:
    """Projects P and Q with pairs; a reviewer of P, a plain annotator of P, a reviewer of Q only."""
    p, q = make_project(session, name="P"), make_project(session, name="Q")
    pairs = make_pairs(session, p, 2)
    make_pairs(session, q, 1)
    session.commit()

    def key(name: str, project: Any, **extra: Any) -> str:
        body = {"role": "annotator", "name": name, "projects": [str(project.id)], **extra}
        created = client.post("/v1/keys", json=body)
        assert created.status_code == 201, created.text
        return str(created.json()["key"])

    return {
        "p": p,
        "pair": pairs[0],
        "reviewer": key("rita", p, reviewer=True),
        "plain": key("ann", p),
        "elsewhere": key("quinn", q, reviewer=True),
    }


class TestReviewerFlag:
    def test_reviewer_reviews_its_projects_and_is_recorded(self, client: Any, world: Any, db: Any) -> None:
        p, pair, rita = world["p"], world["pair"], bearer(world["reviewer"])
        me = client.get("/v1/me", headers=rita).json()
        assert (me["role"], me["reviewer"]) == ("annotator", True)
        assert client.get(f"/v1/projects/{p.id}/review", headers=rita).status_code == 200
        verdict = client.post(
            f"/v1/projects/{p.id}/pairs/{pair.id}/review", json={"verdict": "tie"}, headers=rita
        )
        assert verdict.status_code == 201
        assert verdict.json()["reviewer"] == "rita"
        with db.session() as s:
            assert s.scalars(select(PairReview.reviewer).where(PairReview.pair_id == pair.id)).all() == [
                "rita"
            ]
        reviewed = [e for e in client.get("/v1/audit").json()["items"] if e["action"] == "pair.reviewed"]
        assert [e["actor"] for e in reviewed] == ["rita"]

    def test_no_other_data_team_powers(self, client: Any, world: Any) -> None:
        p, pair, rita = world["p"], world["pair"], bearer(world["reviewer"])
        for method, path, body in [
            ("GET", f"/v1/projects/{p.id}/quality", None),
            ("POST", f"/v1/projects/{p.id}/quality/refresh", None),
            ("GET", f"/v1/projects/{p.id}/annotators", None),
            ("PUT", f"/v1/projects/{p.id}/pairs/{pair.id}/gold", {"answer": "a"}),
            ("GET", f"/v1/projects/{p.id}/pairs", None),
            ("POST", f"/v1/projects/{p.id}/exports", {"format": "jsonl"}),
            ("PATCH", "/v1/principals/rita", {"reviewer": False}),
        ]:
            answered = client.request(method, path, json=body, headers=rita)
            assert answered.status_code == 403, (method, path, answered.text)

    def test_without_the_flag_or_outside_the_project(self, client: Any, world: Any) -> None:
        p, pair = world["p"], world["pair"]
        review = f"/v1/projects/{p.id}/pairs/{pair.id}/review"
        plain = client.post(review, json={"verdict": "a"}, headers=bearer(world["plain"]))
        assert plain.status_code == 403
        elsewhere = client.post(review, json={"verdict": "a"}, headers=bearer(world["elsewhere"]))
        assert elsewhere.status_code == 404
        assert (
            client.get(f"/v1/projects/{p.id}/review", headers=bearer(world["elsewhere"])).status_code == 404
        )


class TestPrincipalUpdate:
    def test_admin_toggles_the_flag_with_an_audit_entry(self, client: Any, world: Any) -> None:
        p, ann = world["p"], bearer(world["plain"])
        queue = f"/v1/projects/{p.id}/review"
        assert client.get(queue, headers=ann).status_code == 403
        granted = client.patch("/v1/principals/ann", json={"reviewer": True})
        assert granted.status_code == 200
        assert (granted.json()["name"], granted.json()["reviewer"]) == ("ann", True)
        assert client.get(queue, headers=ann).status_code == 200  # the same key, its next request
        assert client.patch("/v1/principals/ann", json={"reviewer": False}).json()["reviewer"] is False
        assert client.get(queue, headers=ann).status_code == 403
        changes = [
            e["details"]
            for e in client.get("/v1/audit").json()["items"]
            if e["action"] == "principal.reviewer_changed" and e["target_type"] == "principal"
        ]
        assert changes == [{"reviewer": True}, {"reviewer": False}]

    def test_a_new_key_keeps_the_flag_unless_told(self, client: Any, world: Any) -> None:
        body = {"role": "annotator", "name": "rita"}
        assert client.post("/v1/keys", json=body).json()["principal"]["reviewer"] is True
        revoked = client.post("/v1/keys", json=body | {"reviewer": False}).json()
        assert revoked["principal"]["reviewer"] is False
        assert client.get("/v1/me", headers=bearer(world["reviewer"])).json()["reviewer"] is False

    def test_bad_requests(self, client: Any, world: Any) -> None:
        assert client.patch("/v1/principals/nobody", json={"reviewer": True}).status_code == 404
        wrong = client.patch("/v1/principals/ann", json={"reviewer": "maybe"})
        assert wrong.status_code == 422
        assert wrong.json()["errors"][0]["field"].endswith("reviewer")
        extra = client.patch("/v1/principals/ann", json={"role": "admin"})
        assert extra.status_code == 422
        assert client.get("/v1/keys").json()["items"][0]["principal"]["role"] == "annotator"
