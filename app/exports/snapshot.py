"""Read a project's labels as of a snapshot, streaming: per-pair label counts and Dawid–Skene, then rows.

Two passes over one consistent read (REPEATABLE READ on Postgres; a deferred read transaction on SQLite, so
an export never holds SQLite's write lock):

1. every label with ``labeled_at <= snapshot_at`` on the project's non-gold pairs, ordered by pair: label
   counts per pair, the completing (latest) label's time, and Dawid–Skene over all of them. Kept as numpy
   arrays (a few dozen bytes per pair), never as rows.
2. the pairs with such a label, ordered by id, with their prompt, both responses and the newest review
   verdict made by the snapshot: one row at a time, into the writer.
"""

from __future__ import annotations

import array
import functools
import hashlib
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import DateTime, Engine, create_engine, event, exists, func, select, text, type_coerce
from sqlalchemy.orm import Session, aliased
from sqlalchemy.pool import NullPool

from app.db.session import Database
from app.exports import rows as R
from app.exports.models import ExportRun
from app.labels import outcome
from app.labels.repository import SIDE_COLUMNS
from app.pairs.models import Pair, PairReview
from app.projects.models import Project
from app.prompts.models import Prompt, Response
from app.quality.dawid_skene import dawid_skene_posteriors
from app.queue.models import Label

Tick = Callable[[], None]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Same tolerance as the project aggregate (app.quality.service), so both give the same posteriors.
DS_TOL = 1e-4
FETCH_ROWS = 2_000


def _micros(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _iso_micros(value: int) -> str:
    """``schemas.iso`` of an instant given in microseconds since the epoch."""
    return (_EPOCH + timedelta(microseconds=int(value))).isoformat(timespec="microseconds")[:-6] + "Z"


def _stream(session: Session, query: Any, tick: Tick | None = None) -> Iterator[Any]:
    """Core rows (no ORM loading) fetched FETCH_ROWS at a time, with a tick per batch."""
    for partition in session.connection().execute(query).partitions():
        yield from partition
        if tick is not None:
            tick()


# ------------------------------------------------------------------------------------------- read session

_sqlite_readers: dict[str, Engine] = {}
_sqlite_lock = threading.Lock()


def _sqlite_reader(db: Database) -> Engine:
    """An engine on the same SQLite file whose transactions are plain (deferred) BEGINs: readers in WAL
    mode see one snapshot and never block the writers (the main engine begins IMMEDIATE)."""
    url = db.settings.database_url
    with _sqlite_lock:
        engine = _sqlite_readers.get(url)
        if engine is None:
            timeout_ms = db.settings.sqlite_busy_timeout_ms
            engine = create_engine(
                url,
                poolclass=NullPool,
                connect_args={"check_same_thread": False, "timeout": timeout_ms / 1000},
            )

            @event.listens_for(engine, "connect")
            def _on_connect(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.isolation_level = None
                cursor = dbapi_connection.cursor()
                cursor.execute(f"PRAGMA busy_timeout={int(timeout_ms)}")
                cursor.execute("PRAGMA query_only=ON")
                cursor.close()

            @event.listens_for(engine, "begin")
            def _on_begin(connection: Any) -> None:
                connection.exec_driver_sql("BEGIN")

            _sqlite_readers[url] = engine
        return engine


# Transactions of other sessions on this database that began by the cutoff and have written (a transaction
# gets an xid at its first write: read-only ones, other exports' read sessions included, are not waited for).
_OPEN_WRITERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND backend_xid IS NOT NULL AND xact_start <= :cutoff"
)


def settle(
    db: Database, snapshot_at: datetime, settle_s: float, timeout_s: float, tick: Tick | None = None
) -> bool:
    """Wait until no label stamped at or before ``snapshot_at`` can still commit, so that every export of a
    snapshot reads the same labels (an export taken right at its snapshot, under load, used to miss labels
    that committed moments later, and a later export of that snapshot held them: two files for one snapshot).

    A label is written within moments of its stamp (app/queue/router.py stamps it when its work starts), so:
    until ``settle_s`` past the snapshot, then, on Postgres, while a transaction that began by then and has
    written is open (a label held up by a lock), at most ``timeout_s``. False when it gave up waiting."""
    cutoff = snapshot_at + timedelta(seconds=settle_s)
    while (left := (cutoff - datetime.now(UTC)).total_seconds()) > 0:
        time.sleep(min(left, 1.0))
        if tick is not None:
            tick()
    if db.engine.dialect.name != "postgresql":
        return True
    deadline = time.monotonic() + timeout_s
    while True:
        with db.engine.connect() as conn:
            if not conn.execute(_OPEN_WRITERS, {"cutoff": cutoff}).scalar():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
        if tick is not None:
            tick()


@contextmanager
def read_session(db: Database) -> Iterator[Session]:
    """A read-only session that sees one consistent state of the database for its whole life."""
    if db.engine.dialect.name == "sqlite":
        session = Session(bind=_sqlite_reader(db))
    else:
        session = Session(bind=db.engine)
        session.connection(
            execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        )
    try:
        yield session
    finally:
        session.rollback()
        session.close()


# ------------------------------------------------------------------------------------------- pass 1


@dataclass
class LabelStats:
    """Per labelled non-gold pair (sorted by id): canonical label counts, completing label, DS posteriors."""

    keys: npt.NDArray[Any]  # S16 pair ids, sorted
    counts: npt.NDArray[np.int32]  # (pairs, 4)
    completed: npt.NDArray[np.int64]  # microseconds since the epoch
    posteriors: npt.NDArray[np.float64] | None  # (pairs, 4); None without overlapping labels
    labels: int = 0
    annotators: int = 0
    ds_iterations: int = 0
    ds_converged: bool = True
    overlap: bool = False

    def find(self, pair_id: uuid.UUID) -> int | None:
        """The pair's index (binary search), or None if it had no label by the snapshot."""
        key = np.array(pair_id.bytes, dtype="S16")
        i = int(np.searchsorted(self.keys, key))
        if i < len(self.keys) and self.keys[i] == key:
            return i
        return None

    def walker(self) -> Callable[[uuid.UUID], int | None]:
        """``find`` for pair ids asked in ascending order (pass 2): a cursor over the sorted keys."""
        buffer = self.keys.tobytes()
        size = len(self.keys)
        position = 0

        def find(pair_id: uuid.UUID) -> int | None:
            nonlocal position
            key = pair_id.bytes
            while position < size:
                here = buffer[16 * position : 16 * position + 16]
                if here == key:
                    return position
                if here > key:
                    return None
                position += 1
            return None

        return find

    def dawid_skene_summary(self) -> dict[str, Any] | None:
        if self.posteriors is None:
            return None
        return {
            "labels": self.labels,
            "pairs": len(self.keys),
            "annotators": self.annotators,
            "iterations": self.ds_iterations,
            "converged": self.ds_converged,
            "tol": DS_TOL,
        }


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
        .execution_options(yield_per=FETCH_ROWS)
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
            micros = _micros(labeled_at)
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
    stats = LabelStats(
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
            tol=DS_TOL,
        )
        stats.posteriors, stats.ds_iterations, stats.ds_converged = posteriors, iterations, converged
    tick()
    return stats


# ------------------------------------------------------------------------------------------- pass 2


@dataclass
class Tally:
    """What the manifest counts while rows stream past."""

    rows: int = 0
    considered: int = 0
    reviewed_rows: int = 0
    partial_rows: int = 0
    unchanged: int = 0  # incremental: rows the `since` export holds already, as they are
    excluded: dict[str, int] = field(default_factory=lambda: dict.fromkeys(R.REASONS, 0))
    labels_considered: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    labels_exported: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    replaced: list[str] = field(default_factory=list)  # incremental: rows sent again with a new outcome
    retracted: list[str] = field(default_factory=list)  # incremental: rows of the chain that are no more

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "pairs_considered": self.considered,
            "reviewed_rows": self.reviewed_rows,
            "partial_rows": self.partial_rows,
            "unchanged": self.unchanged,
            "replaced": len(self.replaced),
            "retracted": len(self.retracted),
            "excluded": dict(self.excluded),
            "labels": dict(zip(R.CHOICES, self.labels_considered, strict=True)),
            "labels_exported": dict(zip(R.CHOICES, self.labels_exported, strict=True)),
        }


# "V16", not "S16": numpy drops trailing NUL bytes of "S" values, and a UUID may end in one.
STATE_DTYPE = np.dtype([("pair_id", "V16"), ("digest", "<u8")])


@dataclass
class State:
    """The rows an export's consumer holds once it has applied the export (and its chain): each pair id, by
    bytes, with its row's digest (rows.digest). Written beside every export; read by the next incremental."""

    rows: npt.NDArray[Any]  # STATE_DTYPE, sorted by pair id

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.save(out, self.rows, allow_pickle=False)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> State:
        rows = np.load(io.BytesIO(blob), allow_pickle=False)
        if rows.dtype != STATE_DTYPE:
            raise ValueError(f"not an export state file (dtype {rows.dtype})")
        return cls(rows)

    def walker(self) -> Callable[[bytes], int | None]:
        """The digest of a pair id asked in ascending order (pass 2), or None if the state lacks it."""
        keys, digests = self.rows["pair_id"].tolist(), self.rows["digest"].tolist()
        size, position = len(keys), 0

        def find(key: bytes) -> int | None:
            nonlocal position
            while position < size and keys[position] < key:
                position += 1
            if position < size and keys[position] == key:
                return int(digests[position])
            return None

        return find


def retracted(previous: State, current: State) -> list[str]:
    """The pairs ``previous`` holds rows of that ``current`` does not (sorted ids)."""
    gone = np.setdiff1d(previous.rows["pair_id"], current.rows["pair_id"], assume_unique=True)
    return [str(uuid.UUID(bytes=bytes(key))) for key in gone.tolist()]


def inputs(session: Session, project_id: uuid.UUID, as_of: datetime) -> dict[str, Any]:
    """A fingerprint of everything an export's outcomes depend on as of an instant (labels, reviews, gold
    marks, annotations_per_pair): equal fingerprints mean an incremental export would have nothing new."""
    label_filter = (Label.project_id == project_id, Label.labeled_at <= as_of)
    review_filter = (Pair.project_id == project_id, PairReview.created_at <= as_of)
    labels = session.scalar(select(func.count()).select_from(Label).where(*label_filter))
    newest_label = session.scalar(select(Label.id).where(*label_filter).order_by(Label.id.desc()).limit(1))
    reviews = session.scalar(
        select(func.count())
        .select_from(PairReview)
        .join(Pair, Pair.id == PairReview.pair_id)
        .where(*review_filter)
    )
    newest_review = session.scalar(
        select(PairReview.id)
        .join(Pair, Pair.id == PairReview.pair_id)
        .where(*review_filter)
        .order_by(PairReview.id.desc())
        .limit(1)
    )
    gold = session.scalars(
        select(Pair.id).where(Pair.project_id == project_id, Pair.gold_answer.is_not(None)).order_by(Pair.id)
    ).all()
    wanted = session.scalar(select(Project.annotations_per_pair).where(Project.id == project_id))
    return {
        "labels": int(labels or 0),
        "newest_label": str(newest_label) if newest_label else None,
        "reviews": int(reviews or 0),
        "newest_review": str(newest_review) if newest_review else None,
        "gold_pairs": hashlib.sha256(b"".join(g.bytes for g in gold)).hexdigest(),
        "annotations_per_pair": wanted,
    }


class StateBuilder:
    """Collects the state of the rows as pass 2 computes them (in pair id order)."""

    def __init__(self) -> None:
        self._keys = bytearray()
        self._digests = array.array("Q")

    def add(self, key: bytes, digest: int) -> None:
        self._keys += key
        self._digests.append(digest)

    def build(self) -> State:
        rows = np.empty(len(self._digests), dtype=STATE_DTYPE)
        rows["pair_id"] = np.frombuffer(bytes(self._keys), dtype="V16")
        rows["digest"] = np.frombuffer(self._digests, dtype="<u8")
        return State(rows)


def count_gold(session: Session, run: ExportRun) -> int:
    """Gold pairs with a label by the snapshot."""
    query = (
        select(Label.pair_id)
        .join(Pair, Pair.id == Label.pair_id)
        .where(
            Label.project_id == run.project_id,
            Label.labeled_at <= run.snapshot_at,
            Pair.gold_answer.is_not(None),
        )
        .group_by(Label.pair_id)
    )
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)


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
    after_micros = _micros(datetime.fromisoformat(after)) if after else None
    before_micros = _micros(datetime.fromisoformat(before)) if before else None
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
        .execution_options(yield_per=FETCH_ROWS)
    )

    tally.excluded["gold"] = count_gold(session, run)
    tally.considered += tally.excluded["gold"]
    find = stats.walker()
    held = previous.walker() if previous is not None else None
    for row in _stream(session, query, tick):
        (pair_id, similarity, strategy, external_id, prompt, a_ext, a_model, a_text, b_ext, b_model, b_text,
         review) = row  # fmt: skip
        i = find(pair_id)
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
        completed_at = _iso_micros(done)
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
