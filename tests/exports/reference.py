"""The export row path as it was before it was made fast (commit c0896bb, app/exports/snapshot.py): a
reference for test_row_path.py, which checks that today's path writes the same bytes.

Pass 1 read labels through SQLAlchemy's types (UUID objects, aware datetimes) and pass 2 built a dict per row
(rows.build_row) that the writers encoded with json / pyarrow. Kept verbatim but for the imports.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import array
import functools
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import DateTime, exists, select, type_coerce
from sqlalchemy.orm import Session, aliased

from app.exports import rows as R
from app.exports import snapshot
from app.exports.models import ExportRun
from app.exports.snapshot import LabelStats, State, StateBuilder, Tally, Tick
from app.labels import outcome
from app.labels.repository import SIDE_COLUMNS
from app.pairs.models import Pair, PairReview
from app.prompts.models import Prompt, Response
from app.quality.dawid_skene import dawid_skene_posteriors
from app.queue.models import Label


def _stream(session: Session, query: Any, tick: Tick | None = None) -> Iterator[Any]:
    """Core rows (no ORM loading) fetched FETCH_ROWS at a time, with a tick per batch."""
    for partition in session.connection().execute(query).partitions():
        yield from partition
        if tick is not None:
            tick()


def label_stats(session: Session, project_id: uuid.UUID, snapshot_at: datetime, tick: Tick) -> LabelStats:
    """Pass 1: stream the snapshot's labels on non-gold pairs into compact per-pair arrays and fit DS."""
    # On Postgres the driver's aware datetimes as they are (UTCDateTime's conversion per label cost 5% of
    # an export); SQLite stores naive UTC text, which the column type reads.
    labeled_at: Any = Label.labeled_at
    if session.get_bind().dialect.name != "sqlite":
        labeled_at = type_coerce(Label.labeled_at, DateTime(timezone=True))
    query = (
        select(Label.pair_id, Label.annotator, *SIDE_COLUMNS, labeled_at)
        .join(Pair, Pair.id == Label.pair_id)
        .where(Label.project_id == project_id, Label.labeled_at <= snapshot_at, Pair.gold_answer.is_(None))
        .order_by(Label.pair_id, Label.annotator, Label.id)
        .execution_options(yield_per=snapshot.FETCH_ROWS)
    )
    choice_index = {c: k for k, c in enumerate(R.CHOICES)}
    keys = bytearray()
    counts = array.array("i")
    completed = array.array("q")
    item_idx = array.array("i")
    annotator_idx = array.array("i")
    category_idx = array.array("b")
    annotators: dict[str, int] = {}
    current: uuid.UUID | None = None
    n_items = -1
    latest = 0
    seen = 0
    result = session.connection().execute(query)
    for partition in result.partitions():
        for pair_id, annotator, choice, shown_first, response_a_id, labeled_at in partition:
            if pair_id != current:
                if current is not None:
                    completed.append(latest)
                current = pair_id
                n_items += 1
                keys += pair_id.bytes
                counts.extend((0, 0, 0, 0))
                latest = 0
            k = choice_index[outcome.pair_side(choice, shown_first, response_a_id)]
            counts[4 * n_items + k] += 1
            micros = snapshot._micros(labeled_at)
            if micros > latest:
                latest = micros
            item_idx.append(n_items)
            index = annotators.get(annotator)
            if index is None:
                index = annotators[annotator] = len(annotators)
            annotator_idx.append(index)
            category_idx.append(k)
        seen += len(partition)
        tick()
    if current is not None:
        completed.append(latest)
    n_pairs = n_items + 1
    count_array = np.frombuffer(counts, dtype=np.int32).reshape(n_pairs, 4).copy()
    stats = snapshot.LabelStats(
        keys=np.frombuffer(bytes(keys), dtype="S16").copy(),
        counts=count_array,
        completed=np.frombuffer(completed, dtype=np.int64).copy(),
        posteriors=None,
        labels=seen,
        annotators=len(annotators),
    )
    del keys, counts, completed
    if n_pairs > 1 and not bool((stats.keys[1:] > stats.keys[:-1]).all()):
        # Pass 2 walks these keys in step with the pairs; both rely on the database ordering UUIDs bytewise.
        raise RuntimeError("the database does not order pair ids bytewise; exports need it")
    stats.overlap = bool(n_pairs and (count_array.sum(axis=1) >= 2).any())
    if stats.overlap:
        # Annotators numbered by sorted name, items by pair id, labels pair by pair: the encoding
        # app.quality.dawid_skene uses, so the posteriors equal the project aggregate's on the same labels.
        order = sorted(annotators, key=str)
        remap = np.empty(len(annotators), dtype=np.int64)
        for new, name in enumerate(order):
            remap[annotators[name]] = new
        posteriors, iterations, converged = dawid_skene_posteriors(
            np.frombuffer(item_idx, dtype=np.int32),
            remap[np.frombuffer(annotator_idx, dtype=np.int32)],
            np.frombuffer(category_idx, dtype=np.int8),
            n_items=n_pairs,
            n_annotators=len(annotators),
            n_categories=len(R.CHOICES),
            tol=snapshot.DS_TOL,
        )
        stats.posteriors, stats.ds_iterations, stats.ds_converged = posteriors, iterations, converged
    tick()
    return stats


def export_rows(
    session: Session,
    run: ExportRun,
    stats: LabelStats,
    tally: Tally,
    tick: Tick,
    *,
    wanted: int,
    state: StateBuilder,
    previous: State | None = None,
) -> Iterator[dict[str, Any]]:
    """Pass 2: the export's rows in pair id order, counting every considered pair in ``tally`` and every
    row in ``state``. With ``previous`` (the `since` export's state) only rows it lacks or holds with
    another outcome are yielded, and the pairs it holds that are no longer rows are ``tally.retracted``."""
    filters = run.filters or {}
    snapshot_at = run.snapshot_at
    # One rule (app/labels/outcome.py), computed once per distinct (counts, verdict): a few dozen per export.
    decide = functools.lru_cache(maxsize=65_536)(outcome.decide)
    after = filters.get("labeled_after")
    before = filters.get("labeled_before")
    after_micros = snapshot._micros(datetime.fromisoformat(after)) if after else None
    before_micros = snapshot._micros(datetime.fromisoformat(before)) if before else None
    reviewed_filter = filters.get("reviewed", "include")
    min_agreement = filters.get("min_agreement")
    min_posterior = filters.get("min_posterior")
    include_partial = bool(run.include_partial)

    ra, rb = aliased(Response), aliased(Response)
    verdict = (
        select(PairReview.verdict)
        .where(PairReview.pair_id == Pair.id, PairReview.created_at <= snapshot_at)
        .order_by(PairReview.created_at.desc(), PairReview.id.desc())
        .limit(1)
        .correlate(Pair)
        .scalar_subquery()
    )
    query = (
        select(
            Pair.id,
            Pair.similarity,
            Pair.strategy,
            Prompt.external_id,
            Prompt.prompt,
            ra.external_id,
            ra.model,
            ra.text,
            rb.external_id,
            rb.model,
            rb.text,
            verdict,
        )
        .join(Prompt, Prompt.id == Pair.prompt_id)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(
            Pair.project_id == run.project_id,
            Pair.gold_answer.is_(None),
            exists().where(Label.pair_id == Pair.id, Label.labeled_at <= snapshot_at),
        )
        .order_by(Pair.id)
        .execution_options(yield_per=snapshot.FETCH_ROWS)
    )

    tally.excluded["gold"] = snapshot.count_gold(session, run)
    tally.considered += tally.excluded["gold"]
    find = stats.walker()
    held = previous.walker() if previous is not None else None
    for row in _stream(session, query, tick):
        (pair_id, similarity, strategy, external_id, prompt, a_ext, a_model, a_text, b_ext, b_model, b_text,
         review) = row  # fmt: skip
        i = find(pair_id.bytes)
        if i is None:  # cannot happen within one consistent read: never skip a pair silently
            raise RuntimeError(f"pair {pair_id} has labels by the snapshot but was not seen in pass 1")
        done = int(stats.completed[i])
        c0, c1, c2, c3 = stats.counts[i].tolist()
        counts = (c0, c1, c2, c3)
        tally.considered += 1
        for k in range(4):
            tally.labels_considered[k] += counts[k]
        decided = decide(counts, review, wanted)
        winner = decided.winner
        posterior = (
            round(float(stats.posteriors[i, winner]), 6)
            if stats.posteriors is not None and winner is not None
            else None
        )
        reason: str | None = None
        if not decided.completed and not include_partial:
            reason = "partial"
        elif winner is None:
            reason = decided.reason or "tied_majority"
        elif reviewed_filter == "exclude" and decided.reviewed:
            reason = "reviewed"
        elif reviewed_filter == "only" and not decided.reviewed:
            reason = "not_reviewed"
        elif (after_micros is not None and done < after_micros) or (
            before_micros is not None and done >= before_micros
        ):
            reason = "outside_labeled_range"
        elif (
            min_agreement is not None
            and not decided.reviewed
            and (decided.agreement is None or decided.agreement < min_agreement)
        ):
            reason = "below_min_agreement"
        elif (
            min_posterior is not None
            and not decided.reviewed
            and (posterior is None or posterior < min_posterior)
        ):
            reason = "below_min_posterior"
        if reason is not None:
            tally.excluded[reason] += 1
            continue
        completed_at = snapshot._iso_micros(done)
        digest = R.digest(decided, completed_at)
        state.add(pair_id.bytes, digest)
        if held is not None:
            before_digest = held(pair_id.bytes)
            if before_digest == digest:
                tally.unchanged += 1
                continue
            if before_digest is not None:
                tally.replaced.append(str(pair_id))
        tally.rows += 1
        tally.reviewed_rows += int(decided.reviewed)
        tally.partial_rows += int(not decided.completed)
        for k in range(4):
            tally.labels_exported[k] += counts[k]
        yield R.build_row(
            style=run.style,
            pair_id=pair_id,
            prompt=prompt,
            prompt_external_id=external_id,
            side_a=R.Side(a_ext, a_model, a_text),
            side_b=R.Side(b_ext, b_model, b_text),
            similarity=similarity,
            strategy=strategy,
            decided=decided,
            ds_posterior=posterior,
            completed_at=completed_at,
        )
    tick()
