"""The fast row path (raw reads, texts quoted by the database, lines and tuples instead of dicts) writes the
same bytes as the path it replaced (tests/exports/reference.py), on Postgres and on SQLite.

One small world with what escaping, float formatting and key order can get wrong: control characters,
quotes, backslashes, non-ASCII, emoji, U+2028, chat prompts, missing external ids and models, odd floats,
labels shown in either order, verdicts, a gold pair, partial pairs; exported in every format and style,
with every filter, and incrementally. Each export runs twice, once with the reference pass 1 and pass 2
patched in, and the two must agree on the data file's sha256, the state file and the counts.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.exports import snapshot
from app.exports.snapshot import _iso_many, _iso_micros, quotes_like_python
from app.pairs.models import Pair
from app.prompts.models import Prompt, Response
from tests.exports import reference
from tests.exports.helpers import at, label, manifest, review, run_export
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")

TEXTS = [
    'quote " backslash \\ slash / tab \t newline \n return \r',
    "controls \x01\x02\x08\x0b\x0c\x1b\x1f and DEL \x7f",
    "non-ASCII: é ü ß 中文 — “quotes” 😀 \U0010ffff",
    "separators \u2028 \u2029 BOM \ufeff zero-width \u200b",
    "plain text",
    "",
    "</script><b>html</b> & entities &amp;",
    "\\u00e9 looks like an escape",
]
PROMPTS: list[Any] = [
    "plain prompt",
    'prompt with "quotes" and \\ and \n newline',
    [{"role": "system", "content": "Be brief.\n"}, {"role": "user", "content": "Café? 😀"}],
    "prompt é ü",
    [{"role": "user", "content": 'say "hi"'}],
]
SIMILARITIES = [0.5, 1 / 3, 1e-7, 0.1 + 0.2, 0.0, -0.25, 123456.789, 1e22]


def seed(db: Any) -> Any:
    with db.session() as s:
        project = make_project(s, annotations_per_pair=2)
        pairs = make_pairs(s, project, 24)
        for n, pair in enumerate(pairs):
            prompt = s.get_one(Prompt, pair.prompt_id)
            prompt.prompt = PROMPTS[n % len(PROMPTS)]
            prompt.external_id = TEXTS[n % len(TEXTS)][:40] + f" {n}"
            pair.similarity = SIMILARITIES[n % len(SIMILARITIES)]
            for side, response_id in enumerate((pair.response_a_id, pair.response_b_id)):
                response = s.get_one(Response, response_id)
                response.text = TEXTS[(n + side) % len(TEXTS)] + f" #{n}"
                if n % 5 == side:
                    response.external_id = None
                    response.model = None
                else:
                    response.external_id = f"r-{n}-{side} é"
            minute = n * 2.0 + 1
            kind = n % 8
            if kind == 0:  # unanimous a
                label(s, pair, "ann1", "a", at(minute))
                label(s, pair, "ann2", "a", at(minute + 0.5))
            elif kind == 1:  # b, shown first, twice
                label(s, pair, "ann1", "a", at(minute), b_first=True)
                label(s, pair, "ann3", "a", at(minute + 0.25), b_first=True)
            elif kind == 2:  # split 2-1
                label(s, pair, "ann1", "b", at(minute))
                label(s, pair, "ann2", "b", at(minute + 0.1))
                label(s, pair, "ann3", "b", at(minute + 0.3), b_first=True)  # screen b = response_a
            elif kind == 3:  # one label: partial
                label(s, pair, "ann2", "a", at(minute))
            elif kind == 4:  # split, a verdict decides
                label(s, pair, "ann1", "a", at(minute))
                label(s, pair, "ann2", "b", at(minute + 0.2))
                review(s, pair, "b" if n % 16 == 4 else "a", at(minute + 0.4))
            elif kind == 5:  # tie
                label(s, pair, "ann1", "tie", at(minute))
                label(s, pair, "ann3", "tie", at(minute + 0.2))
            elif kind == 6:  # both bad and a winner
                label(s, pair, "ann1", "both_bad", at(minute))
                label(s, pair, "ann2", "a", at(minute + 0.1))
                label(s, pair, "ann3", "a", at(minute + 0.15))
            else:  # a gold pair
                label(s, pair, "ann1", "a", at(minute))
                pair.gold_answer = "a"
        s.flush()
        return project.id


@pytest.fixture(params=["postgres", "sqlite"])
def any_db(request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("db" if request.param == "postgres" else "sqlite_app")


def both(db: Any, pid: Any, **request: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest of the export made by today's path and of the same export by the reference path."""
    new = run_export(db, pid, **request)
    assert new.status == "succeeded", new.error
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "label_stats", reference.label_stats)
        patch.setattr(snapshot, "export_rows", reference.export_rows)
        old = run_export(db, pid, **request)
    assert old.status == "succeeded", old.error
    return manifest(new), manifest(old)


def same(new: dict[str, Any], old: dict[str, Any]) -> None:
    for key in ("files", "state", "counts", "replaced", "retracted", "dawid_skene"):
        assert new[key] == old[key], key


REQUESTS: list[dict[str, Any]] = [
    {"format": "jsonl", "include_partial": True},
    {"format": "jsonl", "style": "conversational", "include_partial": True},
    {"format": "jsonl", "compression": "gzip"},
    {"format": "parquet", "include_partial": True},
    {"format": "parquet", "style": "conversational", "include_partial": True},
    {"format": "parquet", "compression": "gzip", "filters": {"reviewed": "only"}},
    {"format": "jsonl", "filters": {"min_agreement": 0.7, "reviewed": "exclude"}, "include_partial": True},
    {"format": "jsonl", "filters": {"min_posterior": 0.6}, "include_partial": True},
    {
        "format": "jsonl",
        "filters": {"labeled_after": at(10).isoformat(), "labeled_before": at(30).isoformat()},
    },  # noqa: E501
]


def test_every_format_and_filter_writes_the_reference_bytes(any_db: Any) -> None:
    pid = seed(any_db)
    for request in REQUESTS:
        new, old = both(any_db, pid, snapshot_at=at(120), **request)
        assert new["counts"]["rows"] > 0 or request.get("filters"), request
        same(new, old)


def test_without_database_quoting_the_bytes_are_the_same(any_db: Any) -> None:
    """Python quotes the texts where the database's quoting would differ (here: forced)."""
    pid = seed(any_db)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "quotes_like_python", lambda session: False)
        for request in REQUESTS[:3]:
            new, old = both(any_db, pid, snapshot_at=at(120), **request)
            same(new, old)


def test_incremental_exports_match_the_reference(any_db: Any) -> None:
    pid = seed(any_db)
    base = run_export(any_db, pid, snapshot_at=at(20), include_partial=True)
    with any_db.session() as s:  # later labels: some rows change, some are new, some unchanged
        pairs = s.scalars(select(Pair).where(Pair.project_id == pid).order_by(Pair.id)).all()
        label(s, pairs[3], "ann4", "b", at(70))
        label(s, pairs[11], "ann4", "b", at(71))
        label(s, pairs[0], "ann4", "tie", at(72))
    new, old = both(any_db, pid, snapshot_at=at(120), include_partial=True, since=base.id)
    assert new["counts"]["unchanged"] > 0
    same(new, old)


def test_the_databases_quote_json_as_python_does(any_db: Any) -> None:
    """What the fast path relies on (and checks on every export before using it)."""
    with snapshot.read_session(any_db) as session:
        assert quotes_like_python(session)


def test_iso_many_is_iso_micros() -> None:
    import numpy as np

    values = [0, 1, -1, 1_767_225_600_000_001, 1_767_225_659_999_999, 4_102_444_800_000_000, -86_400_000_001]
    assert _iso_many(np.array(values, dtype=np.int64)) == [_iso_micros(v) for v in values]


def test_pairs_split_across_fetched_batches(any_db: Any) -> None:
    """Batches of 3 rows: pass 1's pairs continue from one batch into the next (labels of a pair)."""
    pid = seed(any_db)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snapshot, "FETCH_ROWS", 3)
        for request in (REQUESTS[0], REQUESTS[4], REQUESTS[7]):
            new, old = both(any_db, pid, snapshot_at=at(120), **request)
            same(new, old)
