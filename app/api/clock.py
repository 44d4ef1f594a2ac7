"""The clock every lease decision reads; tests override it to move time without sleeping."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends

from app.db.base import utcnow


async def get_now() -> datetime:
    """Now, timezone-aware UTC (async: resolved on the event loop, no threadpool hop per request)."""
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]
