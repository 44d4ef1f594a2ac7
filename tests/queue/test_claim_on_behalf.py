"""An admin claims on behalf of `{"annotator": name}` only for an existing annotator principal that may work
on the project; any other name is 422 naming `annotator`, and nothing is leased (an admin cannot invent
annotators, whose labels would then count as independent judgments)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.auth.models import Principal, Role
from app.queue.models import Assignment
from tests.factories import make_annotator, make_pairs, make_project


@pytest.fixture
def projects(session: Any) -> tuple[Any, Any]:
    p, q = make_project(session, name="P"), make_project(session, name="Q")
    make_pairs(session, p, 2)
    return p, q


def claim_for(client: Any, project: Any, name: str) -> Any:
    return client.post(f"/v1/projects/{project.id}/queue/claim", json={"annotator": name})


def test_an_annotator_of_the_project(client: Any, session: Any, projects: tuple[Any, Any]) -> None:
    p, q = projects
    make_annotator(session, "ann", p.id, q.id)
    session.commit()
    claimed = claim_for(client, p, "ann")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["annotator"] == "ann"


@pytest.mark.parametrize("who", ["invented", "team", "boss", "outsider"])
def test_anyone_else_is_422_naming_annotator(
    client: Any, session: Any, projects: tuple[Any, Any], who: str
) -> None:
    p, q = projects
    make_annotator(session, "outsider", q.id)  # of another project
    session.add(Principal(name="team", role=Role.DATA_TEAM, projects=[str(p.id)]))
    session.add(Principal(name="boss", role=Role.ADMIN))
    session.commit()
    refused = claim_for(client, p, who)
    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["annotator"]
    assert who in refused.json()["detail"]
    assert session.scalar(select(func.count()).select_from(Assignment)) == 0
