"""The clock every lease decision reads; tests override it to move time without sleeping."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends

from app.db.base import utcnow


def get_now() -> datetime:
    """Now, timezone-aware UTC."""
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]
