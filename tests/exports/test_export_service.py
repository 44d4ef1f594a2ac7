"""Exports as of a snapshot: winners, exclusions, determinism, Dawid–Skene, incremental, filters, manifest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import select

from app.auth.context import BOOTSTRAP_ADMIN
from app.errors import InvalidInput
from app.exports import service
from app.exports.models import ExportStatus
from app.exports.rows import REASONS
from app.exports.schemas import ExportRequest, Manifest
from app.pairs.models import Pair
from app.projects.models import Project
from app.quality import service as quality
from tests.exports.helpers import at, data_bytes, label, manifest, review, run_export
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")


def lines(run: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data_bytes(run).decode().splitlines()]


def seed_world(db: Any) -> dict[str, Any]:
    """Nine pairs, each a case of the winner rule, labelled between minutes 1 and 9."""
    with db.session() as s:
        project = make_project(s, annotations_per_pair=3)
        p = make_pairs(s, project, 10)
        label(s, p[0], "ann1", "a", at(1))  # unanimous a: 3 labels
        label(s, p[0], "ann2", "a", at(2))
        label(s, p[0], "ann3", "a", at(3))
        label(s, p[1], "ann1", "b", at(1))  # b wins 2-1
        label(s, p[1], "ann2", "b", at(2))
        label(s, p[1], "ann3", "a", at(4))
        label(s, p[2], "ann1", "a", at(1))  # split 1-1: tied majority
        label(s, p[2], "ann2", "b", at(2))
        label(s, p[3], "ann1", "tie", at(1))  # tie
        label(s, p[3], "ann2", "tie", at(2))
        label(s, p[4], "ann1", "both_bad", at(5))  # both bad
        label(s, p[5], "ann1", "a", at(6))  # a single label
        label(s, p[6], "ann1", "a", at(1))  # labels say a, the reviewer says b
        label(s, p[6], "ann2", "a", at(2))
        review(s, p[6], "b", at(3))
        label(s, p[7], "ann1", "a", at(1))  # split, resolved by the reviewer as tie
        label(s, p[7], "ann2", "b", at(2))
        review(s, p[7], "tie", at(3))
        label(s, p[8], "ann1", "a", at(7))  # a gold pair: never exported
        p[8].gold_answer = "a"
        # p[9] has no label at all: not considered.
        return {"project": project.id, "pairs": [x.id for x in p]}


def test_only_completed_pairs_by_default(db: Any) -> None:
    """annotations_per_pair is 3: p2–p5 have fewer labels and no verdict; p6 and p7 have a verdict."""
    world = seed_world(db)
    pairs = world["pairs"]
    run = run_export(db, world["project"], snapshot_at=at(60))
    assert [r["pair_id"] for r in lines(run)] == sorted(str(pairs[i]) for i in (0, 1, 6))
    assert all(r["completed"] for r in lines(run))
    counts = manifest(run)["counts"]
    assert counts["excluded"] == {**dict.fromkeys(REASONS, 0), "gold": 1, "partial": 4, "tie": 1}
    assert counts["partial_rows"] == 0
    assert manifest(run)["request"]["include_partial"] is False
    assert manifest(run)["annotations_per_pair"] == 3


def test_winners_rows_and_exclusions(db: Any) -> None:
    world = seed_world(db)
    pairs = world["pairs"]
    run = run_export(db, world["project"], snapshot_at=at(60), include_partial=True)
    assert run.status == ExportStatus.SUCCEEDED, run.error
    rows = lines(run)
    assert [r["pair_id"] for r in rows] == sorted(str(pairs[i]) for i in (0, 1, 5, 6))
    by_pair = {r["pair_id"]: r for r in rows}
    unanimous, two_one, single, reviewed = (by_pair[str(pairs[i])] for i in (0, 1, 5, 6))
    assert (unanimous["chosen"], unanimous["rejected"]) == ("first answer to 0", "second answer to 0")
    assert (two_one["chosen"], two_one["rejected"]) == ("second answer to 1", "first answer to 1")
    assert (reviewed["chosen"], reviewed["rejected"]) == ("second answer to 6", "first answer to 6")
    assert (unanimous["num_labels"], unanimous["agreement"], unanimous["label_smoothing"]) == (3, 1.0, 0.0)
    assert two_one["agreement"] == pytest.approx(2 / 3)
    assert (two_one["label_smoothing"], two_one["weight"]) == (0.333333, 0.333333)
    assert single["agreement"] is None
    # One of three labels: no disagreement seen (epsilon 0), a third of the evidence wanted (weight 1/3).
    assert (single["completed"], single["label_smoothing"], single["weight"]) == (False, 0.0, 0.333333)
    assert unanimous["completed"] is True
    assert reviewed["reviewed"] is True
    assert reviewed["agreement"] == 0.0
    assert (reviewed["label_smoothing"], reviewed["weight"]) == (0.0, 1.0)
    assert unanimous["completed_at"] == "2026-01-01T00:03:00.000000Z"
    assert two_one["chosen_model"] == "model-1"
    assert two_one["rejected_model"] == "model-0"
    assert all(0.0 <= r["ds_posterior"] <= 1.0 for r in rows)

    counts = manifest(run)["counts"]
    assert counts["rows"] == run.rows == 4
    assert counts["excluded"] == {
        **dict.fromkeys(REASONS, 0),
        "gold": 1,
        "tied_majority": 1,
        "tie": 2,  # labels (p3) and a reviewer's verdict (p7)
        "both_bad": 1,
    }
    assert counts["pairs_considered"] == counts["rows"] + sum(counts["excluded"].values()) == 9
    assert counts["labels"] == {"a": 9, "b": 4, "tie": 2, "both_bad": 1}  # gold pair's label left out
    assert counts["labels_exported"] == {"a": 7, "b": 2, "tie": 0, "both_bad": 0}
    assert counts["reviewed_rows"] == 1
    assert counts["partial_rows"] == 1


def test_the_snapshot_sees_only_labels_and_reviews_made_by_then(db: Any) -> None:
    world = seed_world(db)
    pairs = world["pairs"]
    early = run_export(db, world["project"], snapshot_at=at(2.5), include_partial=True)
    ids = [r["pair_id"] for r in lines(early)]
    # At 2.5: p0 has 2 a's, p1 2 b's, p6 2 a's and no review yet (the verdict came at minute 3).
    assert ids == sorted(str(pairs[i]) for i in (0, 1, 6))
    row6 = next(r for r in lines(early) if r["pair_id"] == str(pairs[6]))
    assert (row6["reviewed"], row6["chosen"]) == (False, "first answer to 6")
    assert manifest(early)["counts"]["excluded"]["tied_majority"] == 2  # p2 and p7, before the review


def test_two_exports_of_one_snapshot_are_byte_identical_even_after_new_labels(db: Any) -> None:
    world = seed_world(db)
    pairs = world["pairs"]
    request = {"snapshot_at": at(60), "format": "jsonl", "compression": "gzip"}
    first = run_export(db, world["project"], **request)
    second = run_export(db, world["project"], **request)
    assert first.id != second.id
    assert first.sha256 == second.sha256 == hashlib.sha256(data_bytes(first)).hexdigest()
    assert data_bytes(first) == data_bytes(second)
    # Labels and reviews after the snapshot change nothing in an export of that snapshot.
    with db.session() as s:
        p = {x.id: x for x in s.scalars(select(Pair).where(Pair.id.in_(pairs)))}
        label(s, p[pairs[2]], "ann3", "a", at(61))
        label(s, p[pairs[5]], "ann2", "b", at(62))
        review(s, p[pairs[0]], "b", at(63))
    third = run_export(db, world["project"], **request)
    assert third.sha256 == first.sha256
    later = run_export(db, world["project"], **{**request, "snapshot_at": at(120)})
    assert later.sha256 != first.sha256
    # The manifests differ only in the fields that name the export.
    one, three = manifest(first), manifest(third)
    for m in (one, three):
        Manifest.model_validate(m)
        del m["export_id"], m["created_at"]
    assert one == three


def test_parquet_is_deterministic_too(db: Any) -> None:
    world = seed_world(db)
    for style in ("standard", "conversational"):
        for compression in ("none", "gzip"):
            request = {"snapshot_at": at(60), "format": "parquet", "style": style, "compression": compression}
            first = run_export(db, world["project"], **request)
            second = run_export(db, world["project"], **request)
            assert first.sha256 == second.sha256, request


def test_ds_posterior_is_recomputed_from_the_snapshot_not_read_from_live_columns(db: Any) -> None:
    with db.session() as s:
        project = make_project(s, annotations_per_pair=3)
        p = make_pairs(s, project, 6)
        for n, pair in enumerate(p):
            label(s, pair, "ann1", "a", at(1))
            label(s, pair, "ann2", "a" if n % 3 else "b", at(2))
            label(s, pair, "ann3", "a" if n % 2 else "b", at(3))
        pid = project.id
    with db.session() as s:
        quality.aggregate(s, s.get_one(Project, pid))
    run = run_export(db, pid, snapshot_at=at(10))
    with db.session() as s:
        live = {str(x.id): x.ds_posterior for x in s.scalars(select(Pair).where(Pair.project_id == pid))}
    rows = lines(run)
    assert rows
    for row in rows:
        winner = "a" if row["chosen"].startswith("first") else "b"
        assert row["ds_posterior"] == pytest.approx(live[row["pair_id"]][winner], abs=1e-6)
    # New labels move the live aggregate; the snapshot's export does not move.
    with db.session() as s:
        for pair in s.scalars(select(Pair).where(Pair.project_id == pid)):
            label(s, pair, "ann4", "b", at(20))
            label(s, pair, "ann5", "b", at(21))
        quality.aggregate(s, s.get_one(Project, pid))
    again = run_export(db, pid, snapshot_at=at(10))
    assert again.sha256 == run.sha256
    with db.session() as s:
        moved = {str(x.id): x.ds_posterior for x in s.scalars(select(Pair).where(Pair.project_id == pid))}
    assert any(
        abs(moved[r["pair_id"]]["a" if r["chosen"].startswith("first") else "b"] - r["ds_posterior"]) > 1e-3
        for r in lines(again)
    )


def test_since_and_snapshot_are_validated(db: Any) -> None:
    with db.session() as s:
        project = make_project(s)
        other = make_project(s, name="other")
        pid, oid = project.id, other.id
    foreign = run_export(db, oid)
    with db.session() as s:
        queued = service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest())
        queued_id = queued.id
    late = run_export(db, pid)
    cases = [
        ({"since": foreign.id}, "since"),
        ({"since": queued_id}, "since"),
        ({"since": __import__("uuid").uuid4()}, "since"),
        ({"since": late.id, "snapshot_at": at(1)}, "since"),
        ({"snapshot_at": __import__("datetime").datetime(2999, 1, 1, tzinfo=at(0).tzinfo)}, "snapshot_at"),
    ]
    for request, field in cases:
        with db.session() as s, pytest.raises(InvalidInput) as caught:
            service.create(s, BOOTSTRAP_ADMIN, s.get_one(Project, pid), ExportRequest(**request))
        assert caught.value.errors, request
        assert caught.value.errors[0].field == field, request


def test_filters(db: Any) -> None:
    world = seed_world(db)
    pairs = world["pairs"]
    pid = world["project"]

    def kept(include_partial: bool = True, **filters: Any) -> tuple[list[int], dict[str, int]]:
        run = run_export(db, pid, snapshot_at=at(60), filters=filters, include_partial=include_partial)
        index = {str(x): n for n, x in enumerate(pairs)}
        return sorted(index[r["pair_id"]] for r in lines(run)), manifest(run)["counts"]["excluded"]

    assert kept()[0] == [0, 1, 5, 6]
    assert kept(include_partial=False)[0] == [0, 1, 6]
    ids, excluded = kept(min_agreement=0.7)
    assert ids == [0, 6]  # p1 has 2/3; p5 one label (unknown agreement); p6 reviewed passes
    assert excluded["below_min_agreement"] == 2
    ids, excluded = kept(reviewed="exclude")
    assert (ids, excluded["reviewed"]) == ([0, 1, 5], 1)
    ids, excluded = kept(reviewed="only")
    assert (ids, excluded["not_reviewed"]) == ([6], 3)
    ids, excluded = kept(labeled_after=at(3), labeled_before=at(6))
    # Completing labels: p0 at 3, p1 at 4, p5 at 6 (excluded: the end is open), p6 at 2.
    assert (ids, excluded["outside_labeled_range"]) == ([0, 1], 2)
    ids, excluded = kept(min_posterior=0.0)
    assert ids == [0, 1, 5, 6]
    assert excluded["below_min_posterior"] == 0
    ids, excluded = kept(min_posterior=1.0)
    assert 6 in ids
    assert excluded["below_min_posterior"] == 4 - len(ids)
    for filters in ({"min_agreement": 0.7}, {"reviewed": "only"}, {"min_posterior": 1.0}):
        run = run_export(db, pid, snapshot_at=at(60), filters=filters, include_partial=True)
        counts = manifest(run)["counts"]
        assert counts["pairs_considered"] == counts["rows"] + sum(counts["excluded"].values())
        assert manifest(run)["request"]["filters"] == {
            "min_agreement": None,
            "min_posterior": None,
            "reviewed": "include",
            "labeled_after": None,
            "labeled_before": None,
            **filters,
        }


def test_a_project_without_labels_exports_an_empty_file(db: Any) -> None:
    with db.session() as s:
        project = make_project(s)
        make_pairs(s, project, 2)
        pid = project.id
    for fmt in ("jsonl", "parquet"):
        run = run_export(db, pid, format=fmt)
        assert (run.status, run.rows) == (ExportStatus.SUCCEEDED, 0), run.error
        assert manifest(run)["dawid_skene"] is None


def test_manifest_names_every_file_with_its_sha256(db: Any) -> None:
    world = seed_world(db)
    run = run_export(
        db,
        world["project"],
        format="parquet",
        style="conversational",
        snapshot_at=at(60),
        include_partial=True,
    )
    m = manifest(run)
    Manifest.model_validate(m)
    assert m["schema_version"] == service.SCHEMA_VERSION
    assert m["code_version"].startswith("real-align")
    assert m["files"] == {
        "data.parquet": {
            "sha256": hashlib.sha256(data_bytes(run)).hexdigest(),
            "bytes": len(data_bytes(run)),
            "media_type": "application/vnd.apache.parquet",
        }
    }
    assert m["export_id"] == str(run.id)
    assert m["snapshot_at"] == "2026-01-01T01:00:00.000000Z"
    assert m["request"]["style"] == "conversational"
    assert m["writer"]["codec"] == "NONE"
    assert m["dawid_skene"]["labels"] == 16
    assert m["dawid_skene"]["pairs"] == 8
    assert run.manifest == m
