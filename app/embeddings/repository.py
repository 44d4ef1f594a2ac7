"""Queries on stored embeddings."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.embeddings.models import Embedding


def existing_hashes(session: Session, model: str, hashes: Iterable[str]) -> set[str]:
    """Which of these text hashes already have a vector for the model."""
    wanted = list(set(hashes))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            session.scalars(
                select(Embedding.text_sha256).where(
                    Embedding.model == model, Embedding.text_sha256.in_(chunk)
                )
            )
        )
    return found


def vectors_for(session: Session, model: str, hashes: Iterable[str]) -> dict[str, Embedding]:
    """Stored embeddings by text hash, for one model."""
    wanted = list(set(hashes))
    out: dict[str, Embedding] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        for row in session.scalars(
            select(Embedding).where(Embedding.model == model, Embedding.text_sha256.in_(chunk))
        ):
            out[row.text_sha256] = row
    return out


def insert_ignoring_duplicates(session: Session, rows: list[dict[str, object]]) -> None:
    """Insert embeddings; a (model, text_sha256) already stored by another worker is left as it is."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Embedding).on_conflict_do_nothing(index_elements=["model", "text_sha256"])
    session.execute(stmt, rows)
