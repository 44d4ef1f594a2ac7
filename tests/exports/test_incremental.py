"""Incremental exports a trainer can concatenate: each `since` export holds the rows whose outcome is new or
changed, and its manifest lists the rows of the chain to drop (`retracted`: no longer a row; `replaced`:
sent again in this file). Applied in order, the chain equals one full export of the last snapshot."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import delete, select

from app.auth.context import BOOTSTRAP_ADMIN
from app.errors import InvalidInput
from app.exports import service
from app.exports.models import ExportRun, ExportStatus
from app.exports.schemas import ExportRequest
from app.pairs.models import Pair
from app.projects.models import Project
from app.queue.models import Label
from tests.exports.helpers import at, data_bytes, label, manifest, review, run_export
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")


def lines(run: ExportRun) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data_bytes(run).decode().splitlines()]


def without_posterior(row: dict[str, Any]) -> dict[str, Any]:
    """The Dawid–Skene posterior moves with every label in the project; a row is only re-sent when its
    own outcome changes, so the posterior is the one column allowed to differ (docs/exports.md)."""
    return {k: v for k, v in row.items() if k != "ds_posterior"}


def replay(chain: list[ExportRun]) -> dict[str, dict[str, Any]]:
    """What a consumer holds after applying each export in order: drop `retracted` and `replaced`, append."""
    held: dict[str, dict[str, Any]] = {}
    for run in chain:
        m = manifest(run)
        for pair_id in m["retracted"] + m["replaced"]:
            assert pair_id in held, f"{run.id} drops {pair_id}, which the chain does not hold"
            del held[pair_id]
        for row in lines(run):
            assert row["pair_id"] not in held, f"{run.id} repeats {row['pair_id']} without dropping it"
            held[row["pair_id"]] = row
        counts = m["counts"]
        assert counts["pairs_considered"] == counts["rows"] + counts["unchanged"] + sum(
            counts["excluded"].values()
        )
        assert (counts["retracted"], counts["replaced"]) == (len(m["retracted"]), len(m["replaced"]))
    return held


def undo(db: Any, pair_id: Any, annotator: str) -> None:
    """An annotator's label withdrawn (the undo deletes the row)."""
    with db.session() as s:
        s.execute(delete(Label).where(Label.pair_id == pair_id, Label.annotator == annotator))


@pytest.mark.parametrize("include_partial", [False, True])
def test_a_chain_of_five_incremental_exports_replays_to_the_full_export(
    db: Any, include_partial: bool
) -> None:
    with db.session() as s:
        project = make_project(s, annotations_per_pair=2)
        made = make_pairs(s, project, 8)
        pid, ids = project.id, [x.id for x in made]

    def act(steps: list[tuple[Any, ...]]) -> None:
        with db.session() as s:
            p = {x.id: x for x in s.scalars(select(Pair).where(Pair.project_id == pid))}
            for kind, n, *rest in steps:
                if kind == "label":
                    label(s, p[ids[n]], rest[0], rest[1], at(rest[2]))
                else:
                    review(s, p[ids[n]], rest[0], at(rest[1]))

    def export(minute: float, since: ExportRun | None) -> ExportRun:
        run = run_export(
            db,
            pid,
            snapshot_at=at(minute),
            since=since.id if since else None,
            include_partial=include_partial,
        )
        assert run.status == ExportStatus.SUCCEEDED, run.error
        return run

    act([
        ("label", 0, "ann1", "a", 1), ("label", 0, "ann2", "a", 2),  # a, complete
        ("label", 1, "ann1", "b", 3),  # partial
        ("label", 2, "ann1", "a", 4), ("label", 2, "ann2", "b", 5),  # tied
        ("label", 3, "ann1", "tie", 6), ("label", 3, "ann2", "tie", 7),  # tie
    ])  # fmt: skip
    chain = [export(10, None)]
    act([("label", 1, "ann2", "b", 11), ("label", 4, "ann1", "a", 12), ("label", 4, "ann2", "a", 13)])
    undo(db, ids[0], "ann2")  # p0 back to one label: partial
    chain.append(export(15, chain[-1]))
    act([("label", 0, "ann2", "b", 16), ("review", 2, "a", 17), ("review", 4, "b", 18)])
    chain.append(export(20, chain[-1]))
    act([("review", 2, "tie", 21), ("label", 5, "ann1", "b", 22), ("label", 5, "ann2", "b", 23)])
    chain.append(export(25, chain[-1]))
    act([("label", 6, "ann1", "a", 26)])
    chain.append(export(30, chain[-1]))
    act([("label", 6, "ann2", "a", 31)])
    undo(db, ids[1], "ann1")
    chain.append(export(35, chain[-1]))

    full = {r["pair_id"]: r for r in lines(export(35, None))}
    held = replay(chain)
    assert {k: without_posterior(v) for k, v in held.items()} == {
        k: without_posterior(v) for k, v in full.items()
    }
    by_n = {str(x): n for n, x in enumerate(ids)}
    shape = [
        (sorted(by_n[r["pair_id"]] for r in lines(run)), sorted(by_n[i] for i in manifest(run)["retracted"]),
         sorted(by_n[i] for i in manifest(run)["replaced"]))
        for run in chain
    ]  # fmt: skip
    if include_partial:
        # Partial pairs are rows too; a second label changes their num_labels and weight (replaced).
        assert shape == [
            ([0, 1], [], []),
            ([0, 1, 4], [], [0, 1]),  # p0 loses a label (a, partial); p1 complete; p4 new
            ([2, 4], [0], [4]),  # p0 tied; p2 reviewed a; p4 reviewed b
            ([5], [2], []),  # p2 reviewed tie; p5 new
            ([6], [], []),  # p6 partial
            ([1, 6], [], [1, 6]),  # p1 partial again (weight); p6 complete
        ]
    else:
        assert shape == [
            ([0], [], []),
            ([1, 4], [0], []),  # p0 partial again: retracted; p1 complete; p4 new
            ([2, 4], [], [4]),  # p0 tied; p2 reviewed a; p4 reviewed b (replaced)
            ([5], [2], []),  # p2 reviewed tie; p5 new
            ([], [], []),  # p6 only partial: nothing new
            ([6], [1], []),  # p6 complete; p1 partial again
        ]
    assert held[str(ids[4])]["reviewed"] is True


def test_an_unchanged_row_is_not_sent_again_although_its_posterior_moved(db: Any) -> None:
    with db.session() as s:
        project = make_project(s, annotations_per_pair=2)
        p = make_pairs(s, project, 3)
        label(s, p[0], "ann1", "a", at(1))
        label(s, p[0], "ann2", "a", at(2))
        label(s, p[1], "ann1", "a", at(3))
        label(s, p[1], "ann2", "b", at(4))
        pid, ids = project.id, [x.id for x in p]
    first = run_export(db, pid, snapshot_at=at(5))
    with db.session() as s:
        pair = s.get_one(Pair, ids[2])
        label(s, pair, "ann1", "b", at(6))
        label(s, pair, "ann2", "a", at(7))
        label(s, s.get_one(Pair, ids[1]), "ann3", "b", at(7.5))  # a third label: b wins p1
    second = run_export(db, pid, snapshot_at=at(8), since=first.id)
    assert [r["pair_id"] for r in lines(second)] == [str(ids[1])]
    counts = manifest(second)["counts"]
    assert (counts["rows"], counts["unchanged"], counts["excluded"]["tied_majority"]) == (1, 1, 1)
    assert manifest(second)["since_snapshot_at"] == "2026-01-01T00:05:00.000000Z"


def test_since_must_continue_the_same_rows(db: Any) -> None:
    with db.session() as s:
        pid = make_project(s).id
    base = run_export(db, pid, filters={"min_agreement": 0.5})
    for request in (
        {"since": base.id},  # other filters
        {"since": base.id, "filters": {"min_agreement": 0.5}, "style": "conversational"},
        {"since": base.id, "filters": {"min_agreement": 0.5}, "include_partial": True},
    ):
        with db.session() as s, pytest.raises(InvalidInput) as caught:
            service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest(**request))
        assert caught.value.errors[0].field == "since"
    # Another format (or compression) is fine: the rows are the same.
    follow = run_export(db, pid, since=base.id, filters={"min_agreement": 0.5}, format="parquet")
    assert follow.status == ExportStatus.SUCCEEDED, follow.error


def test_an_export_without_state_cannot_be_continued(db: Any) -> None:
    with db.session() as s:
        pid = make_project(s).id
    old = run_export(db, pid)
    with db.session() as s:
        stored = s.get_one(ExportRun, old.id)
        stored.manifest = {k: v for k, v in (stored.manifest or {}).items() if k != "state"} | {
            "schema_version": 1
        }
    with db.session() as s, pytest.raises(InvalidInput, match="schema_version 1") as caught:
        service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest(since=old.id))
    assert caught.value.errors[0].field == "since"
