"""The export routes, end to end through HTTP: request validation, files, manifest, list and latest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from app.exports import tasks
from tests.exports.helpers import at, label
from tests.factories import make_pairs, make_project

pytestmark = pytest.mark.usefixtures("recorded_tasks")


def seed(db: Any) -> str:
    with db.session() as s:
        project = make_project(s, annotations_per_pair=1)
        pairs = make_pairs(s, project, 4)
        for n, pair in enumerate(pairs[:3]):
            label(s, pair, "ann1", "a" if n % 2 else "b", at(n + 1))
        return str(project.id)


def start(client: Any, pid: str, body: Any = None, *, run: bool = True) -> dict[str, Any]:
    created = client.post(f"/v1/projects/{pid}/exports", json=body)
    assert created.status_code == 202, created.text
    if run:
        tasks.run_export(created.json()["id"])
    return dict(client.get(f"/v1/exports/{created.json()['id']}").json())


def test_create_defaults_and_read(client: Any, db: Any) -> None:
    pid = seed(db)
    meta = start(client, pid)
    assert meta["status"] == "succeeded", meta["error"]
    assert (meta["format"], meta["style"], meta["compression"]) == ("jsonl", "standard", "none")
    assert meta["since"] is None
    assert meta["include_partial"] is False
    assert meta["attempts"] == 1
    assert meta["filters"] == {
        "min_agreement": None,
        "min_posterior": None,
        "reviewed": "include",
        "labeled_after": None,
        "labeled_before": None,
    }
    assert (meta["file_name"], meta["media_type"]) == ("data.jsonl", "application/x-ndjson")
    assert meta["manifest"]["rows"] == meta["rows"] == 3
    assert meta["manifest"]["files"]["data.jsonl"]["sha256"] == meta["sha256"]
    assert meta["manifest"]["label_counts"] == {"a": 1, "b": 2, "tie": 0, "both_bad": 0}
    assert meta["started_at"]
    assert meta["finished_at"]
    assert meta["bytes"] > 0


@pytest.mark.parametrize(
    ("fmt", "compression", "media_type", "name"),
    [
        ("jsonl", "none", "application/x-ndjson", "data.jsonl"),
        ("jsonl", "gzip", "application/gzip", "data.jsonl.gz"),
        ("parquet", "none", "application/vnd.apache.parquet", "data.parquet"),
        ("parquet", "gzip", "application/vnd.apache.parquet", "data.parquet"),
    ],
)
def test_download_media_type_and_file_name(
    client: Any, db: Any, fmt: str, compression: str, media_type: str, name: str
) -> None:
    pid = seed(db)
    meta = start(client, pid, {"format": fmt, "compression": compression})
    body = client.get(f"/v1/exports/{meta['id']}/file")
    assert body.status_code == 200
    assert body.headers["content-type"].split(";")[0] == media_type
    assert body.headers["content-disposition"].endswith(f'-{name}"')
    assert hashlib.sha256(body.content).hexdigest() == meta["sha256"]
    assert len(body.content) == meta["bytes"]
    if compression == "gzip" and fmt == "jsonl":
        assert body.content[:2] == b"\x1f\x8b"
        assert body.content[4:8] == b"\0\0\0\0"
    manifest = client.get(f"/v1/exports/{meta['id']}/manifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"] == "application/json"
    assert json.loads(manifest.content)["files"] == {
        name: {"sha256": meta["sha256"], "bytes": meta["bytes"], "media_type": media_type}
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"snapshot_at": "2999-01-01T00:00:00Z"}, "snapshot_at"),
        ({"snapshot_at": "2020-01-01T00:00:00"}, "snapshot_at"),  # no time zone
        ({"since": "00000000-0000-0000-0000-000000000000"}, "since"),
        ({"format": "csv"}, "format"),
        ({"style": "chatml"}, "style"),
        ({"compression": "zstd"}, "compression"),
        ({"filters": {"min_agreement": 1.5}}, "filters.min_agreement"),
        ({"filters": {"min_posterior": -0.1}}, "filters.min_posterior"),
        ({"filters": {"reviewed": "maybe"}}, "filters.reviewed"),
        (
            {"filters": {"labeled_after": "2026-02-01T00:00:00Z", "labeled_before": "2026-01-01T00:00:00Z"}},
            "filters",
        ),
        ({"filters": {"gold": True}}, "filters.gold"),
        ({"surprise": 1}, "surprise"),
        ({"include_partial": "yes"}, "include_partial"),  # JSON booleans only
    ],
)
def test_invalid_requests_name_the_field(client: Any, db: Any, body: dict[str, Any], field: str) -> None:
    pid = seed(db)
    answer = client.post(f"/v1/projects/{pid}/exports", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    # Schema errors are located in the body ("body.filters.min_agreement"); rule errors name the field.
    assert field in {e["field"].removeprefix("body.") for e in answer.json()["errors"]}, answer.json()


def test_since_must_be_a_succeeded_export_of_this_project(client: Any, db: Any) -> None:
    pid = seed(db)
    other = seed(db)
    foreign = start(client, other)
    queued = start(client, pid, run=False)
    for since in (foreign["id"], queued["id"]):
        answer = client.post(f"/v1/projects/{pid}/exports", json={"since": since})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "since"
    tasks.run_export(queued["id"])
    fine = start(client, pid, {"since": queued["id"]})
    assert fine["status"] == "succeeded"
    assert fine["since"] == queued["id"]
    assert fine["rows"] == 0


def test_list_is_newest_first_with_cursor(client: Any, db: Any) -> None:
    pid = seed(db)
    made = [start(client, pid, {"format": fmt}) for fmt in ("jsonl", "parquet", "jsonl")]
    queued = start(client, pid, run=False)
    first = client.get(f"/v1/projects/{pid}/exports", params={"limit": 3}).json()
    assert [e["id"] for e in first["items"]] == [queued["id"], made[2]["id"], made[1]["id"]]
    rest = client.get(
        f"/v1/projects/{pid}/exports", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [e["id"] for e in rest["items"]] == [made[0]["id"]]
    assert rest["next_cursor"] is None
    only = client.get(f"/v1/projects/{pid}/exports", params={"status": "queued"}).json()
    assert [e["id"] for e in only["items"]] == [queued["id"]]


def test_latest_is_the_newest_succeeded(client: Any, db: Any) -> None:
    pid = seed(db)
    none = client.get(f"/v1/projects/{pid}/exports/latest")
    assert none.status_code == 404
    assert none.headers["content-type"] == "application/problem+json"
    parquet = start(client, pid, {"format": "parquet"})
    jsonl = start(client, pid)
    start(client, pid, run=False)  # queued: not the latest
    assert client.get(f"/v1/projects/{pid}/exports/latest").json()["id"] == jsonl["id"]
    latest_parquet = client.get(f"/v1/projects/{pid}/exports/latest", params={"format": "parquet"}).json()
    assert latest_parquet["id"] == parquet["id"]


def test_files_of_an_unfinished_export_are_409(client: Any, db: Any) -> None:
    pid = seed(db)
    queued = start(client, pid, run=False)
    for suffix in ("file", "manifest"):
        answer = client.get(f"/v1/exports/{queued['id']}/{suffix}")
        assert answer.status_code == 409, answer.text
