"""Cursor pagination for every list: ``?limit=&cursor=`` → ``{items, next_cursor}``.

Lists are keyset-paginated on a UUIDv7 id: a page is the first ``limit`` rows after (or, newest first,
before) the cursor's id. ``paginate`` and ``paginate_rows`` are the only places that apply the cursor, fetch
``limit + 1`` rows and decide whether there is a next page; services and repositories hand them the query.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, TypeVarTuple, cast

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Row, Select
from sqlalchemy.orm import QueryableAttribute, Session

from app.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")
E = TypeVar("E")
Ts = TypeVarTuple("Ts")

MAX_PAGE_SIZE = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


LimitQuery = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Items per page (at most 200).")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="The `next_cursor` of the previous page.")
]


def encode_cursor(last_id: uuid.UUID) -> str:
    """An opaque cursor after this id (ids are time-ordered UUIDv7)."""
    return base64.urlsafe_b64encode(last_id.bytes).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> uuid.UUID | None:
    """The id a cursor points after; 422 naming `cursor` if it is not one of ours."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return uuid.UUID(bytes=raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("not a cursor returned by this API", field="cursor") from exc


@dataclass(frozen=True)
class PageRows(Generic[R]):
    """The rows of one page and the cursor to the next (None on the last page)."""

    rows: list[R]
    next_cursor: str | None

    def page(self, item: Callable[[R], T]) -> Page[T]:
        """The API page: each row made into its item, same cursor."""
        return Page(items=[item(row) for row in self.rows], next_cursor=self.next_cursor)


def _window(
    query: Select[*Ts],
    id_column: QueryableAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
    descending: bool,
) -> Select[*Ts]:
    # One row more than the page: its presence is what says a next page exists.
    after = decode_cursor(cursor)
    if after is not None:
        query = query.where(id_column < after if descending else id_column > after)
    return query.order_by(id_column.desc() if descending else id_column.asc()).limit(limit + 1)


def _cut(found: list[R], limit: int, last_id: Callable[[R], uuid.UUID]) -> PageRows[R]:
    if len(found) <= limit:
        return PageRows(rows=found, next_cursor=None)
    return PageRows(rows=found[:limit], next_cursor=encode_cursor(last_id(found[limit - 1])))


def paginate(
    session: Session,
    query: Select[E],
    id_column: QueryableAttribute[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> PageRows[E]:
    """One page of a single-entity query, ordered by `id_column` (oldest first unless `descending`).

    The query brings its filters, never its own order or limit; a bad cursor is 422 naming `cursor`.
    """
    found = list(session.scalars(_window(query, id_column, cursor, limit, descending)))
    return _cut(found, limit, lambda entity: _id(entity, id_column))


def paginate_rows(
    session: Session,
    query: Select[*Ts],
    id_column: QueryableAttribute[uuid.UUID],
    *,
    limit: int,
    cursor: str | None,
    descending: bool = False,
) -> PageRows[Row[*Ts]]:
    """One page of a multi-column query whose first column is the entity that `id_column` belongs to."""
    found = list(session.execute(_window(query, id_column, cursor, limit, descending)).all())
    return _cut(found, limit, lambda row: _id(cast(Any, row)[0], id_column))


def _id(entity: Any, id_column: QueryableAttribute[uuid.UUID]) -> uuid.UUID:
    # The cursor is read from the very column the page is ordered and filtered on.
    value: uuid.UUID = getattr(entity, id_column.key)
    return value
