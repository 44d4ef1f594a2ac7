"""The keyset-pagination helper every list route uses: pages, the cursor, and the last-page rule."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.pagination import decode_cursor, encode_cursor, paginate, paginate_rows
from app.errors import InvalidInput
from app.projects.models import Project
from app.prompts.models import Prompt
from tests.auth.world import build_world
from tests.factories import make_pairs, make_project


def projects(session: Session, count: int) -> list[uuid.UUID]:
    """`count` projects; their ids in id order."""
    made = [make_project(session, name=f"p{n}") for n in range(count)]
    session.commit()
    return sorted(p.id for p in made)


def page_ids(
    session: Session, limit: int, cursor: str | None, **kw: Any
) -> tuple[list[uuid.UUID], str | None]:
    found = paginate(session, select(Project), Project.id, limit=limit, cursor=cursor, **kw)
    return [p.id for p in found.rows], found.next_cursor


class TestPaginate:
    def test_first_middle_and_last_page(self, session: Session) -> None:
        ids = projects(session, 5)
        first, after_first = page_ids(session, 2, None)
        assert first == ids[:2]
        assert after_first == encode_cursor(ids[1])
        middle, after_middle = page_ids(session, 2, after_first)
        assert middle == ids[2:4]
        assert after_middle == encode_cursor(ids[3])
        last, after_last = page_ids(session, 2, after_middle)
        assert last == ids[4:]
        assert after_last is None

    def test_a_page_that_ends_exactly_at_the_last_row_has_no_next_cursor(self, session: Session) -> None:
        ids = projects(session, 3)
        assert page_ids(session, 3, None) == (ids, None)
        first, cursor = page_ids(session, 2, None)
        assert page_ids(session, 1, cursor) == (ids[2:], None)

    def test_empty(self, session: Session) -> None:
        assert page_ids(session, 10, None) == ([], None)

    def test_a_cursor_past_the_end_gives_an_empty_last_page(self, session: Session) -> None:
        ids = projects(session, 2)
        assert page_ids(session, 10, encode_cursor(ids[-1])) == ([], None)

    def test_descending_pages_newest_first(self, session: Session) -> None:
        ids = projects(session, 5)
        first, cursor = page_ids(session, 3, None, descending=True)
        assert first == ids[::-1][:3]
        assert cursor == encode_cursor(ids[2])
        assert page_ids(session, 3, cursor, descending=True) == (ids[::-1][3:], None)

    def test_the_query_keeps_its_filters(self, session: Session) -> None:
        projects(session, 4)
        query = select(Project).where(Project.name != "p1")
        first = paginate(session, query, Project.id, limit=2, cursor=None)
        rest = paginate(session, query, Project.id, limit=2, cursor=first.next_cursor)
        assert sorted(p.name for p in first.rows + rest.rows) == ["p0", "p2", "p3"]
        assert rest.next_cursor is None

    @pytest.mark.parametrize("cursor", ["!!!", "AAAA", "x" * 30])
    def test_a_cursor_that_is_not_ours_is_invalid_input_naming_cursor(
        self, session: Session, cursor: str
    ) -> None:
        with pytest.raises(InvalidInput) as raised:
            paginate(session, select(Project), Project.id, limit=1, cursor=cursor)
        assert raised.value.errors is not None
        assert [e.field for e in raised.value.errors] == ["cursor"]


class TestPaginateRows:
    def test_rows_are_keyed_by_their_first_column(self, session: Session) -> None:
        project = make_project(session)
        ids = sorted(pair.prompt_id for pair in make_pairs(session, project, 3))
        session.commit()
        query = select(Prompt, Project.name).join(Project, Project.id == Prompt.project_id)
        first = paginate_rows(session, query, Prompt.id, limit=2, cursor=None)
        assert [row[0].id for row in first.rows] == ids[:2]
        assert [row[1] for row in first.rows] == [project.name] * 2
        assert first.next_cursor == encode_cursor(ids[1])
        rest = paginate_rows(session, query, Prompt.id, limit=2, cursor=first.next_cursor)
        assert [row[0].id for row in rest.rows] == ids[2:]
        assert rest.next_cursor is None


class TestPageRows:
    def test_page_maps_each_row_and_keeps_the_cursor(self, session: Session) -> None:
        ids = projects(session, 3)
        found = paginate(session, select(Project), Project.id, limit=2, cursor=None)
        page = found.page(lambda p: p.id)
        assert page.items == ids[:2]
        assert page.next_cursor == found.next_cursor == encode_cursor(ids[1])


class TestCursor:
    def test_round_trip(self) -> None:
        some_id = uuid.uuid4()
        assert decode_cursor(encode_cursor(some_id)) == some_id
        assert decode_cursor(None) is None
        assert decode_cursor("") is None

    def test_a_bad_cursor_is_a_422_naming_cursor(self, client: Any) -> None:
        answer = client.get("/v1/projects", params={"cursor": "not-a-cursor!"})
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in answer.json()["errors"]] == ["cursor"]


ASCENDING = ["/v1/audit", "/v1/keys", "/v1/projects", "/v1/projects/{p}/prompts", "/v1/projects/{p}/pairs"]
DESCENDING = ["/v1/projects/{p}/exports", "/v1/projects/{p}/webhook-deliveries"]


class TestListRoutes:
    @pytest.mark.parametrize("route", ASCENDING + DESCENDING)
    def test_walking_pages_of_two_gives_the_whole_list_in_id_order(
        self, route: str, client: Any, db: Any, recorded_tasks: list[Any]
    ) -> None:
        world = build_world(db)
        # The world's admin key retires the bootstrap key the client was made with.
        client.headers["Authorization"] = f"Bearer {world.keys['admin']}"
        path = route.format(p=world.ids["project"])
        for _ in range(2):  # more exports, so that list has pages too
            assert client.post(f"/v1/projects/{world.ids['project']}/exports").status_code == 202
        whole = client.get(path, params={"limit": 200}).json()
        assert whole["next_cursor"] is None
        walked: list[Any] = []
        cursor = None
        while True:
            page = client.get(path, params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert len(page["items"]) <= 2
            walked += page["items"]
            if not (cursor := page["next_cursor"]):
                break
        assert walked == whole["items"]
        ids = [uuid.UUID(item["id"]) for item in walked]
        assert ids == sorted(ids, reverse=route in DESCENDING)
