"""Labels read as pair sides: every reader of outcomes goes through here and app/labels/outcome.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.labels import outcome
from app.pairs.models import Pair
from app.queue.models import Label

# What outcome.pair_side reads of a label, in a query that joins its pair: (choice, shown first, response_a).
SIDE_COLUMNS = (Label.choice, Label.shown_first_response_id, Pair.response_a_id)


def counts_by_pair(
    session: Session, pair_ids: Sequence[uuid.UUID], as_of: datetime | None = None
) -> dict[uuid.UUID, outcome.Counts]:
    """Each pair's label counts in pair terms (indexed like outcome.SIDES); none for an unlabelled pair."""
    sides: dict[uuid.UUID, list[str]] = {}
    for start in range(0, len(pair_ids), 500):
        query = (
            select(Label.pair_id, *SIDE_COLUMNS)
            .join(Pair, Pair.id == Label.pair_id)
            .where(Label.pair_id.in_(pair_ids[start : start + 500]))
        )
        if as_of is not None:
            query = query.where(Label.labeled_at <= as_of)
        for pair_id, choice, shown_first, response_a_id in session.execute(query):
            sides.setdefault(pair_id, []).append(outcome.pair_side(choice, shown_first, response_a_id))
    return {pair_id: outcome.count(values) for pair_id, values in sides.items()}


def outcomes(session: Session, pairs: Iterable[Pair], wanted: int) -> dict[uuid.UUID, outcome.Outcome]:
    """Each pair's outcome now, from its labels and its reviewer's verdict (one query for all of them)."""
    pairs = list(pairs)
    counts = counts_by_pair(session, [p.id for p in pairs])
    return {
        p.id: outcome.decide(counts.get(p.id, outcome.NO_LABELS), p.review_verdict, wanted) for p in pairs
    }
