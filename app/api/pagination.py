"""Cursor pagination for every list: ``?limit=&cursor=`` → ``{items, next_cursor}``."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.errors import InvalidInput

T = TypeVar("T")

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
