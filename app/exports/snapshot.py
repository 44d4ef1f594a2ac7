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
import contextlib
import gc
import hashlib
import io
import json
import math
import operator
import queue
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    BigInteger,
    Engine,
    Text,
    cast,
    create_engine,
    event,
    exists,
    func,
    literal,
    select,
    text,
    type_coerce,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.pool import NullPool

from app.db.session import Database
from app.exports import rows as R
from app.exports import writers
from app.exports.models import ExportRun
from app.labels import outcome
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
        # For this transaction only: plan the cursors for all their rows (hash joins and one sort, about
        # half the server CPU of the first-row plan's index lookups per pair), and no JIT (its compilation
        # took 2 s of a 200k-pair export and saved nothing).
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1"))
        session.execute(text("SET LOCAL jit = off"))
    try:
        yield session
    finally:
        session.rollback()
        session.close()


_frozen_lock = threading.Lock()
_frozen_users = 0


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Leave the objects that exist now out of the garbage collector's full passes while an export runs
    (``gc.freeze``): pass 2 keeps a few batches of rows alive across collections, which promotes them and
    sets off full collections, each a walk over every object of the process (SQLAlchemy, pyarrow, numpy:
    55-75 ms each on the export bench, about one per 15,000 rows, some 15% of the export's CPU). Nothing is
    freed later than it would be otherwise once the last export ends (``gc.unfreeze``), and the rows made
    during the export are collected as before. Left alone when something else froze the heap (a fork
    server keeping its pages shared)."""
    global _frozen_users
    with _frozen_lock:
        mine = _frozen_users > 0 or gc.get_freeze_count() == 0
        if mine:
            if _frozen_users == 0:
                gc.freeze()
            _frozen_users += 1
    try:
        yield
    finally:
        if mine:
            with _frozen_lock:
                _frozen_users -= 1
                if _frozen_users == 0:
                    gc.unfreeze()


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

    def walker(self) -> Callable[[bytes], int | None]:
        """``find`` for pair ids (their 16 bytes) asked in ascending order (pass 2): a cursor over the
        sorted keys."""
        buffer = self.keys.tobytes()
        size = len(self.keys)
        position = 0

        def find(key: bytes) -> int | None:
            nonlocal position
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


def _hex_id(column: Any, dialect: str) -> Any:
    """A UUID column as its 32 lowercase hex digits, with no per-row type conversion (SQLite stores them
    so; on Postgres the text form without dashes)."""
    if dialect == "sqlite":
        return type_coerce(column, Text)
    return func.replace(cast(column, Text), "-", "")


_SHOWN_A, _SHOWN_B = uuid.UUID(int=1), uuid.UUID(int=2)


def label_stats(session: Session, project_id: uuid.UUID, snapshot_at: datetime, tick: Tick) -> LabelStats:
    """Pass 1: stream the snapshot's labels on non-gold pairs into compact per-pair arrays and fit DS."""
    dialect = session.get_bind().dialect.name
    # Raw values, no per-label objects: the pair id as hex, whether response_a was shown first, and the
    # label's time as microseconds (Postgres) or the stored text (SQLite: one fixed form, which sorts as
    # the instants do), converted for the completing label only.
    labeled_at: Any = type_coerce(Label.labeled_at, Text)
    if dialect != "sqlite":
        labeled_at = cast(func.round(func.extract("epoch", Label.labeled_at) * 1_000_000), BigInteger)
    query = (
        select(
            _hex_id(Label.pair_id, dialect),
            Label.annotator,
            Label.choice,
            Label.shown_first_response_id == Pair.response_a_id,
            labeled_at,
        )
        .join(Pair, Pair.id == Label.pair_id)
        .where(Label.project_id == project_id, Label.labeled_at <= snapshot_at, Pair.gold_answer.is_(None))
        .order_by(Label.pair_id, Label.annotator, Label.id)
        .execution_options(yield_per=FETCH_ROWS)
    )
    choice_index = {c: k for k, c in enumerate(R.CHOICES)}
    # The pair side of each (choice, response_a shown first): outcome.pair_side, once for each.
    sides = {
        (choice, a_first): choice_index[
            outcome.pair_side(choice, _SHOWN_A if a_first else _SHOWN_B, _SHOWN_A)
        ]
        for choice in R.CHOICES
        for a_first in (True, False)
    }
    keys = bytearray()
    completed = array.array("q")
    item_idx = array.array("i")
    annotator_idx = array.array("i")
    category_idx = array.array("b")
    annotators: dict[str, int] = {}
    current: str | None = None
    n_items = 0
    seen = 0
    result = session.connection().execute(query)
    # A partition at a time, column by column: labels come ordered by pair, so a pair starts wherever the id
    # changes (a pair may continue from the previous partition).
    for partition in result.partitions():
        hex_ids, names, choices, a_firsts, times = zip(*partition, strict=True)
        size = len(hex_ids)
        ids = np.array(hex_ids)
        starts = np.empty(size, dtype=bool)
        starts[0] = hex_ids[0] != current
        np.not_equal(ids[1:], ids[:-1], out=starts[1:])
        items = np.cumsum(starts, dtype=np.int64) + (n_items - 1)
        begin = np.flatnonzero(starts)
        keys += b"".join([bytes.fromhex(hex_ids[k]) for k in begin.tolist()])
        if dialect == "sqlite":  # the stored texts, parsed by numpy
            micros = np.array(times, dtype="datetime64[us]").astype(np.int64)
        else:
            micros = np.array(times, dtype=np.int64)
        segments = begin if starts[0] else np.concatenate(([0], begin))
        latest = np.maximum.reduceat(micros, segments)
        if not starts[0]:  # the previous partition's last pair goes on
            completed[-1] = max(completed[-1], int(latest[0]))
            latest = latest[1:]
        completed.frombytes(latest.astype(np.int64).tobytes())
        item_idx.frombytes(items.astype(np.int32).tobytes())
        category_idx.frombytes(
            np.array([sides[c, bool(f)] for c, f in zip(choices, a_firsts, strict=True)], np.int8).tobytes()
        )
        annotator_idx.extend([annotators.setdefault(name, len(annotators)) for name in names])
        n_items += len(begin)
        current = hex_ids[-1]
        seen += size
        tick()
    n_pairs = n_items
    counts = np.zeros((n_pairs, 4), dtype=np.int32)
    np.add.at(
        counts, (np.frombuffer(item_idx, dtype=np.int32), np.frombuffer(category_idx, dtype=np.int8)), 1
    )
    count_array = counts
    stats = LabelStats(
        keys=np.frombuffer(bytes(keys), dtype="S16").copy(),
        counts=count_array,
        completed=np.frombuffer(completed, dtype=np.int64).copy(),
        posteriors=None,
        labels=seen,
        annotators=len(annotators),
    )
    del keys
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


# The JSON text of a string as the JSONL writer encodes it (json.dumps(s, ensure_ascii=False)).
_quote: Callable[[str], str] = json.encoder.encode_basestring
# Every character class JSON escapes differently (controls, quote, backslash, DEL, non-ASCII, separators):
# the database's JSON quoting is used only if it gives exactly Python's text for this.
_PROBE = "".join(chr(c) for c in range(1, 128)) + "é€😀\u2028\u2029\ufeff\U0010ffff"
# A row's columns in two parts: the outcome's, the same for every row of a group (decided once per distinct
# (label counts, verdict)), and the rest, made per row. Both the JSONL line and the Parquet tuple come from
# these, in file order (rows.columns()).
_OUTCOME_COLUMNS = ("num_labels", "completed", "agreement", "reviewed", "label_smoothing", "weight")
# The order export_rows yields a row's own values in (file order).
_ROW_COLUMNS = (
    "prompt",
    "chosen",
    "rejected",
    "pair_id",
    "prompt_external_id",
    "chosen_response_external_id",
    "rejected_response_external_id",
    "chosen_model",
    "rejected_model",
    "similarity",
    "strategy",
    "ds_posterior",
    "completed_at",
)
assert _ROW_COLUMNS == tuple(c for c in R.columns() if c not in _OUTCOME_COLUMNS)
# Texts whose JSON is themselves in quotes (hex digits and dashes; schemas.iso): the line adds the quotes.
_BARE_TEXT_COLUMNS = ("pair_id", "completed_at")
# A Parquet row in file order from (the row's own values + its group's outcome values).
_PARQUET_ORDER = operator.itemgetter(
    *[
        _ROW_COLUMNS.index(c) if c in _ROW_COLUMNS else len(_ROW_COLUMNS) + _OUTCOME_COLUMNS.index(c)
        for c in R.columns()
    ]
)
_CHUNK = 4096  # pass-1 entries turned into Python values at a time
_POSTERIORS_CACHED = 65_536  # distinct Dawid–Skene posteriors kept with their rounded value and JSON text


def _line_format(outcome_json: dict[str, str]) -> str:
    """A JSONL line of a group as a %-format of the row's own columns (``_ROW_COLUMNS``, JSON texts but the
    bare ones), the outcome's columns already in it: what json.dumps(row, ensure_ascii=False) gives."""
    fields = []
    for name in R.columns():
        if name in outcome_json:
            value = outcome_json[name].replace("%", "%%")
        else:
            value = '"%s"' if name in _BARE_TEXT_COLUMNS else "%s"
        fields.append(f"{_quote(name)}: {value}")
    return "{" + ", ".join(fields) + "}\n"


def _json_quote(column: Any, dialect: str) -> Any:
    """The column's JSON text (``null`` for NULL), made by the database."""
    if dialect == "sqlite":
        return func.json_quote(column)
    return func.coalesce(cast(func.to_json(column), Text), "null")


def quotes_like_python(session: Session) -> bool:
    """Whether the database's JSON quoting of a text gives exactly Python's json.dumps(ensure_ascii=False)
    (Postgres's to_json and SQLite's json_quote do; checked, not assumed)."""
    dialect = session.get_bind().dialect.name
    probe = select(_json_quote(type_coerce(literal(_PROBE), Text), dialect))
    try:
        with session.begin_nested() if dialect == "sqlite" else contextlib.nullcontext():
            quoted = session.execute(probe).scalar()
    except DBAPIError:  # no JSON functions (an SQLite built without them)
        return False
    return bool(quoted == _quote(_PROBE))


def _iso_many(micros: npt.NDArray[np.int64]) -> list[str]:
    """``_iso_micros`` of many instants at once."""
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit="us")
    return [t + "Z" for t in text.tolist()]


def _json_float(value: float | None) -> str:
    if value is None:
        return "null"
    if value != value or value in (math.inf, -math.inf):
        raise ValueError("Out of range float values are not JSON compliant: " + repr(value))
    return float.__repr__(value)


@dataclass
class _Group:
    """What pass 2 needs of one distinct (label counts, verdict): decided once (app/labels/outcome.py)."""

    counts: tuple[int, int, int, int]
    decided: outcome.Outcome
    winner: int | None
    early: str | None  # the first reason that depends on the outcome only (before outside_labeled_range)
    low_agreement: bool  # below_min_agreement applies
    head: bytes  # rows.digest_head
    line: str  # JSONL: the line as a %-format of the row's own columns (_line_format)
    values: tuple[Any, ...]  # Parquet: the outcome's columns (_OUTCOME_COLUMNS)
    considered: int = 0
    exported: int = 0


def _prefetched(session: Session, query: Any) -> Iterator[Sequence[Any]]:
    """The query's rows, FETCH_ROWS at a time, fetched one batch ahead by a thread: the database (and the
    driver, which lets go of the GIL while it waits) works on the next batch while this one is written."""
    result = session.connection().execute(query)
    batches: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def fetch() -> None:
        try:
            for partition in result.partitions():
                if not put(partition):
                    return
            put(done)
        except BaseException as exc:  # raised again by the consumer
            put(exc)

    thread = threading.Thread(target=fetch, name="export-fetch", daemon=True)
    thread.start()
    try:
        while (item := batches.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
        result.close()


def pass2_query(run: ExportRun, dialect: str, quoted: bool) -> Any:
    """Pass 2's query: the pairs with a label by the snapshot, by id, with their prompt (JSON text), both
    responses (as JSON texts when ``quoted``) and the newest review verdict made by the snapshot."""
    snapshot_at = run.snapshot_at
    ra, rb = aliased(Response), aliased(Response)
    verdict = (
        select(PairReview.verdict)
        .where(PairReview.pair_id == Pair.id, PairReview.created_at <= snapshot_at)
        .order_by(PairReview.created_at.desc(), PairReview.id.desc())
        .limit(1)
        .correlate(Pair)
        .scalar_subquery()
    )

    def text_of(column: Any) -> Any:
        return _json_quote(column, dialect) if quoted else column

    prompt_json = type_coerce(Prompt.prompt, Text) if dialect == "sqlite" else cast(Prompt.prompt, Text)
    return (
        select(
            _hex_id(Pair.id, dialect),
            Pair.similarity,
            Pair.strategy,
            text_of(Prompt.external_id),
            prompt_json,
            text_of(ra.external_id),
            text_of(ra.model),
            text_of(ra.text),
            text_of(rb.external_id),
            text_of(rb.model),
            text_of(rb.text),
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
) -> Generator[str | tuple[Any, ...]]:
    """Pass 2: the export's rows in pair id order, counting every considered pair in ``tally`` and every
    row in ``state``. With ``previous`` (the `since` export's state) only rows it lacks or holds with
    another outcome are yielded, and the pairs it holds that are no longer rows are ``tally.retracted``.

    A row is its JSONL line (format jsonl) or a tuple of its values in column order (parquet): the same
    values as ``rows.build_row``'s dict, without building one per row. The outcome is decided once per
    distinct (label counts, verdict) by ``outcome.decide``; the texts come quoted as JSON from the
    database when its quoting matches Python's (``quotes_like_python``)."""
    filters = run.filters or {}
    after = filters.get("labeled_after")
    before = filters.get("labeled_before")
    after_micros = _micros(datetime.fromisoformat(after)) if after else None
    before_micros = _micros(datetime.fromisoformat(before)) if before else None
    reviewed_filter = filters.get("reviewed", "include")
    min_agreement = filters.get("min_agreement")
    min_posterior = filters.get("min_posterior")
    include_partial = bool(run.include_partial)
    jsonl = run.format != "parquet"
    conversational = run.style == "conversational"
    dialect = session.get_bind().dialect.name
    quoted = jsonl and quotes_like_python(session)
    query = pass2_query(run, dialect, quoted)

    tally.excluded["gold"] = count_gold(session, run)
    tally.considered += tally.excluded["gold"]

    def group_of(counts: tuple[int, int, int, int], review: str | None) -> _Group:
        decided = outcome.decide(counts, review, wanted)
        winner = decided.winner
        early: str | None = None
        if not decided.completed and not include_partial:
            early = "partial"
        elif winner is None:
            early = decided.reason or "tied_majority"
        elif reviewed_filter == "exclude" and decided.reviewed:
            early = "reviewed"
        elif reviewed_filter == "only" and not decided.reviewed:
            early = "not_reviewed"
        low_agreement = (
            min_agreement is not None
            and not decided.reviewed
            and (decided.agreement is None or decided.agreement < min_agreement)
        )
        values = (
            decided.labels,
            decided.completed,
            decided.agreement,
            decided.reviewed,
            decided.label_smoothing,
            decided.weight,
        )
        encode = writers.JSON.encode
        line = _line_format({name: encode(v) for name, v in zip(_OUTCOME_COLUMNS, values, strict=True)})
        head = R.digest_head(decided)
        return _Group(counts, decided, winner, early, low_agreement, head, line, values)

    groups: dict[tuple[tuple[int, int, int, int], str | None], _Group] = {}
    find = stats.walker()
    held = previous.walker() if previous is not None else None
    posteriors = stats.posteriors
    lo = hi = 0
    counts_chunk: list[tuple[int, int, int, int]] = []
    done_chunk: list[int] = []
    iso_chunk: list[str] = []
    tail_chunk: list[bytes] = []
    blake2b = hashlib.blake2b  # rows.digest_with, its outcome part (head) and time (tail) made in bulk
    posterior_chunk: list[list[float]] = []
    add_state = state.add
    replaced = tally.replaced
    excluded = tally.excluded
    strategies: dict[str, str] = {}
    repr_float, isfinite = float.__repr__, math.isfinite
    posterior_cache: dict[float, tuple[float, str | None]] = {}  # raw → (rounded, its JSON text for JSONL)
    parquet_order = _PARQUET_ORDER
    rows = unchanged = reviewed_rows = partial_rows = 0
    for batch in _prefetched(session, query):
        tally.considered += len(batch)
        for hex_id, similarity, strategy, prompt_ext, prompt_json, a_ext, a_model, a_text, b_ext, b_model, \
                b_text, review in batch:  # fmt: skip
            key = bytes.fromhex(hex_id)
            i = find(key)
            if i is None:  # cannot happen within one consistent read: never skip a pair silently
                missing = uuid.UUID(hex_id)
                raise RuntimeError(f"pair {missing} has labels by the snapshot but was not seen in pass 1")
            if not lo <= i < hi:
                lo, hi = i, min(i + _CHUNK, len(stats.keys))
                counts_chunk = [tuple(c) for c in stats.counts[lo:hi].tolist()]
                done_chunk = stats.completed[lo:hi].tolist()
                iso_chunk = _iso_many(stats.completed[lo:hi])
                tail_chunk = R.digest_tails(iso_chunk)
                if posteriors is not None:
                    posterior_chunk = posteriors[lo:hi].tolist()
            j = i - lo
            counts = counts_chunk[j]
            group = groups.get((counts, review))
            if group is None:
                group = groups[counts, review] = group_of(counts, review)
            group.considered += 1
            winner = group.winner
            posterior = posterior_json = None
            if posteriors is not None and winner is not None:
                raw = posterior_chunk[j][winner]
                cached = posterior_cache.get(raw)
                if cached is None or raw == 0.0:  # not -0.0 for 0.0 (equal keys)
                    if len(posterior_cache) >= _POSTERIORS_CACHED:
                        posterior_cache.clear()
                    posterior = round(raw, 6)
                    cached = posterior_cache[raw] = (posterior, _json_float(posterior) if jsonl else None)
                posterior, posterior_json = cached
            reason = group.early
            if reason is None:
                done = done_chunk[j]
                if (after_micros is not None and done < after_micros) or (
                    before_micros is not None and done >= before_micros
                ):
                    reason = "outside_labeled_range"
                elif group.low_agreement:
                    reason = "below_min_agreement"
                elif (
                    min_posterior is not None
                    and not group.decided.reviewed
                    and (posterior is None or posterior < min_posterior)
                ):
                    reason = "below_min_posterior"
            if reason is not None:
                excluded[reason] += 1
                continue
            completed_at = iso_chunk[j]
            digest = int.from_bytes(blake2b(group.head + tail_chunk[j], digest_size=8).digest(), "little")
            add_state(key, digest)
            if held is not None:
                before_digest = held(key)
                if before_digest == digest:
                    unchanged += 1
                    continue
                if before_digest is not None:
                    replaced.append(str(uuid.UUID(hex_id)))
            rows += 1
            group.exported += 1
            pair_id = f"{hex_id[:8]}-{hex_id[8:12]}-{hex_id[12:16]}-{hex_id[16:20]}-{hex_id[20:]}"
            if winner == R.A:
                c_ext, c_model, c_text = a_ext, a_model, a_text
                r_ext, r_model, r_text = b_ext, b_model, b_text
            else:
                c_ext, c_model, c_text = b_ext, b_model, b_text
                r_ext, r_model, r_text = a_ext, a_model, a_text
            # The stored JSON of a string prompt with no escape in it is that string's JSON text as it is.
            plain = prompt_json[0] == '"' and prompt_json[-1] == '"' and "\\" not in prompt_json
            if jsonl:
                if not quoted:
                    prompt_ext = _quote(prompt_ext)
                    c_ext = "null" if c_ext is None else _quote(c_ext)
                    r_ext = "null" if r_ext is None else _quote(r_ext)
                    c_model = "null" if c_model is None else _quote(c_model)
                    r_model = "null" if r_model is None else _quote(r_model)
                    c_text, r_text = _quote(c_text), _quote(r_text)
                if conversational:
                    if plain:
                        prompt = '[{"role": "user", "content": ' + prompt_json + "}]"
                    else:
                        prompt = writers.JSON.encode(R.conversation(json.loads(prompt_json)))
                    c_text = '[{"role": "assistant", "content": ' + c_text + "}]"
                    r_text = '[{"role": "assistant", "content": ' + r_text + "}]"
                else:
                    prompt = prompt_json if plain else _quote(R.prompt_text(json.loads(prompt_json)))
                quoted_strategy = strategies.get(strategy)
                if quoted_strategy is None:
                    quoted_strategy = strategies[strategy] = _quote(strategy)
                # _ROW_COLUMNS, as JSON texts (pair_id and completed_at bare)
                yield group.line % (
                    prompt,
                    c_text,
                    r_text,
                    pair_id,
                    prompt_ext,
                    c_ext,
                    r_ext,
                    c_model,
                    r_model,
                    repr_float(similarity) if isfinite(similarity) else _json_float(similarity),
                    quoted_strategy,
                    "null" if posterior_json is None else posterior_json,
                    completed_at,
                )
            else:
                prompt_value: Any = prompt_json[1:-1] if plain else json.loads(prompt_json)
                if conversational:
                    prompt_value = R.conversation(prompt_value)
                    c_text = [{"role": "assistant", "content": c_text}]
                    r_text = [{"role": "assistant", "content": r_text}]
                else:
                    prompt_value = R.prompt_text(prompt_value)
                # _ROW_COLUMNS, then the outcome's: put in file order
                yield parquet_order(
                    (
                        prompt_value,
                        c_text,
                        r_text,
                        pair_id,
                        prompt_ext,
                        c_ext,
                        r_ext,
                        c_model,
                        r_model,
                        float(similarity),
                        strategy,
                        posterior,
                        completed_at,
                        *group.values,
                    )
                )
        tick()
    for group in groups.values():
        for k in range(4):
            tally.labels_considered[k] += group.counts[k] * group.considered
            tally.labels_exported[k] += group.counts[k] * group.exported
        reviewed_rows += group.exported * int(group.decided.reviewed)
        partial_rows += group.exported * int(not group.decided.completed)
    tally.rows += rows
    tally.unchanged += unchanged
    tally.reviewed_rows += reviewed_rows
    tally.partial_rows += partial_rows
    tick()
