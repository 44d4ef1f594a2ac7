"""The real_align client against a real `real-align api` process (Postgres, in-process tasks, real embedding).

One server and one project for the whole module: ingest from a list, a DataFrame, a Dataset and the CLI,
wait for the embeddings, label every pair over HTTP, then export, download and load the export.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from real_align import (
    AuthenticationError,
    Client,
    InvalidInputError,
    NotFoundError,
    Project,
    RealAlignError,
)
from tests.e2e.pipeline import load_items

pytestmark = [pytest.mark.integration, pytest.mark.embedding]

CLI = Path(sys.executable).with_name("real-align")


def _items() -> list[dict[str, Any]]:
    """8 AlpacaEval prompts with 4 responses each, cut to 200 characters: embedding is this module's cost."""
    items = load_items()[:8]
    return [{**it, "responses": [{**r, "text": r["text"][:200]} for r in it["responses"]]} for it in items]


@pytest.fixture(scope="module")
def api_key(admin: httpx.Client) -> str:
    """A data_team key: the role the client is for."""
    created = admin.post("/v1/keys", json={"role": "data_team", "name": "client-tests"})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@pytest.fixture(scope="module")
def client(base_url: str, api_key: str) -> Iterator[Client]:
    with Client(base_url, api_key, timeout=30, retries=2) as c:
        yield c


def _cli(*args: str, url: str, key: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REAL_URL": url, "REAL_API_KEY": key}
    return subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def ingested(
    client: Client, base_url: str, api_key: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """8 prompts with 4 responses each: 3 from a list (2 batches), 2 from a DataFrame, 2 from a Dataset,
    1 through `real-align ingest`; then wait_until_ready."""
    import datasets
    import pandas as pd

    items = _items()
    project = client.create_project("client-tests", instructions="Pick the better answer.")
    results: dict[str, Any] = {"project": project}

    results["list"] = client.ingest(project.id, items[:3], batch_size=2)
    results["list_again"] = client.ingest(project.id, items[:3])
    changed = {**items[1], "prompt": items[1]["prompt"] + " (edited)"}
    results["conflict"] = client.ingest(project.id, [items[0], changed])

    frame = pd.DataFrame(
        [
            {"id": it["external_id"], "question": it["prompt"]}
            | {f"answer_{n}": r["text"] for n, r in enumerate(it["responses"])}
            for it in items[3:5]
        ]
    )
    results["frame"] = client.ingest(
        project.id,
        frame,
        prompt_column="question",
        external_id_column="id",
        responses_column=[f"answer_{n}" for n in range(4)],
    )

    # No external ids, and one response without a model: the Arrow struct column fills it with None.
    dataset_rows = [
        {"prompt": it["prompt"], "responses": [dict(r) for r in it["responses"]]} for it in items[5:7]
    ]
    del dataset_rows[0]["responses"][0]["model"]
    dataset = datasets.Dataset.from_list(dataset_rows)
    results["dataset"] = client.ingest(project.id, dataset, progress=True)
    results["dataset_again"] = client.ingest(project.id, dataset)
    results["dataset_rows"] = dataset_rows

    jsonl = tmp_path_factory.mktemp("cli") / "prompts.jsonl"
    jsonl.write_text("".join(json.dumps(it) + "\n" for it in items[7:8]) + "{oops\n", encoding="utf-8")
    results["cli_ingest"] = _cli("ingest", str(project.id), str(jsonl), "--quiet", url=base_url, key=api_key)

    results["stats"] = client.wait_until_ready(project.id, timeout=240, progress=True)
    return results


class TestProjectsAndIngest:
    def test_create_and_get_project(self, client: Client, ingested: dict[str, Any]) -> None:
        project = ingested["project"]
        assert isinstance(project, Project)
        fetched = client.get_project(project.id)
        assert (fetched.id, fetched.name, fetched.instructions) == (
            project.id,
            "client-tests",
            "Pick the better answer.",
        )
        assert fetched.strategy == "dissimilar"
        assert project.id in {p.id for p in client.list_projects()}

    def test_ingest_from_a_list_in_batches_is_idempotent(self, ingested: dict[str, Any]) -> None:
        first, again = ingested["list"], ingested["list_again"]
        assert (first.accepted, first.duplicates, first.batches, len(first.job_ids)) == (3, 0, 2, 2)
        assert (again.accepted, again.duplicates, again.batches, again.job_ids) == (0, 3, 1, [])

    def test_a_changed_record_is_a_conflict_with_its_index(self, ingested: dict[str, Any]) -> None:
        result = ingested["conflict"]
        assert (result.accepted, result.duplicates) == (0, 1)
        assert [(c.index, c.external_id) for c in result.conflicts] == [(1, _items()[1]["external_id"])]

    def test_ingest_from_a_dataframe_with_column_mapping(
        self, admin: httpx.Client, ingested: dict[str, Any]
    ) -> None:
        assert ingested["frame"].accepted == 2
        item = _items()[3]
        pid = ingested["project"].id
        stored = admin.get(f"/v1/projects/{pid}/prompts/by-external-id/{item['external_id']}").json()
        assert stored["prompt"] == item["prompt"]
        assert [r["text"] for r in stored["responses"]] == [r["text"] for r in item["responses"]]

    def test_ingest_from_a_dataset_gets_content_ids(
        self, admin: httpx.Client, ingested: dict[str, Any]
    ) -> None:
        from real_align.records import auto_external_id

        assert (ingested["dataset"].accepted, ingested["dataset"].duplicates) == (2, 0)
        assert (ingested["dataset_again"].accepted, ingested["dataset_again"].duplicates) == (0, 2)
        row = ingested["dataset_rows"][0]
        external_id = auto_external_id(row["prompt"], row["responses"])
        pid = ingested["project"].id
        stored = admin.get(f"/v1/projects/{pid}/prompts/by-external-id/{external_id}")
        assert stored.status_code == 200, stored.text
        responses = stored.json()["responses"]
        assert responses[0]["model"] is None
        assert [r["model"] for r in responses[1:]] == [r["model"] for r in row["responses"][1:]]
        assert [r["external_id"] for r in responses] == [r["external_id"] for r in row["responses"]]

    def test_cli_ingest(self, ingested: dict[str, Any]) -> None:
        done = ingested["cli_ingest"]
        # The streamed upload: the good line goes in, the bad one is listed with its number (exit 1).
        assert done.returncode == 1, done.stderr
        assert "accepted 1, duplicates 0, refused 1 (of 2 lines)" in done.stdout
        assert "line 2: not JSON" in done.stdout

    def test_wait_until_ready(self, admin: httpx.Client, ingested: dict[str, Any]) -> None:
        stats = ingested["stats"]
        assert stats.prompts == 8
        assert stats.embedded == stats.responses == 32
        assert (stats.pairs, stats.unpairable) == (8, 0)
        pending = admin.get(f"/v1/projects/{ingested['project'].id}/prompts", params={"status": "pending"})
        assert pending.json()["items"] == []


@pytest.fixture(scope="module")
def labelled(admin: httpx.Client, ingested: dict[str, Any]) -> dict[str, str]:
    """Every pair labelled over HTTP (every fourth a tie); pair id → chosen text, for the pairs with one."""
    pid = ingested["project"].id
    chosen: dict[str, str] = {}
    for n in range(ingested["stats"].pairs):
        claim = admin.post(f"/v1/projects/{pid}/queue/claim")
        assert claim.status_code == 200, claim.text
        assignment = claim.json()
        choice = ["a", "b", "tie", "b"][n % 4]
        stored = admin.post(f"/v1/assignments/{assignment['assignment_id']}/label", json={"choice": choice})
        assert stored.status_code == 201, stored.text
        if choice != "tie":
            chosen[stored.json()["pair_id"]] = assignment[f"response_{choice}"]["text"]
    assert admin.post(f"/v1/projects/{pid}/queue/claim").status_code == 204
    return chosen


class TestExport:
    def test_export_wait_download_and_load(
        self, client: Client, ingested: dict[str, Any], labelled: dict[str, str], tmp_path: Path
    ) -> None:
        started = client.export(ingested["project"].id)
        assert started.format == "jsonl"
        done = client.wait_for_export(started.id, timeout=60, progress=True)
        assert len(labelled) == 6  # 8 pairs, 2 ties left out
        assert (done.status, done.rows) == ("succeeded", 6)

        path = client.download_export(done.id, tmp_path / "dpo.jsonl")
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == done.sha256
        lines = [json.loads(line) for line in data.decode().splitlines()]
        assert {line["pair_id"]: line["chosen"] for line in lines} == labelled
        assert not list(tmp_path.glob(".*.part"))

        into_folder = client.download_export(done.id, tmp_path, progress=False)
        assert into_folder.parent == tmp_path
        assert into_folder.suffix == ".jsonl"
        assert into_folder.read_bytes() == data

        loaded = client.load_export(done.id, cache_dir=str(tmp_path / "hf-cache"))
        assert loaded.num_rows == 6
        assert {"prompt", "chosen", "rejected", "pair_id", "prompt_external_id"} <= set(loaded.column_names)
        assert dict(zip(loaded["pair_id"], loaded["chosen"], strict=True)) == labelled

    def test_parquet_gzip_and_conversational_load_into_datasets(
        self, client: Client, ingested: dict[str, Any], labelled: dict[str, str], tmp_path: Path
    ) -> None:
        pid, cache = ingested["project"].id, str(tmp_path / "hf-cache")

        parquet = client.wait_for_export(client.export(pid, format="parquet").id, timeout=60, progress=False)
        assert (parquet.format, parquet.rows) == ("parquet", 6)
        loaded = client.load_export(parquet.id, cache_dir=cache)
        assert dict(zip(loaded["pair_id"], loaded["chosen"], strict=True)) == labelled

        gz = client.wait_for_export(client.export(pid, compression="gzip").id, timeout=60, progress=False)
        path = client.download_export(gz.id, tmp_path, progress=False)
        assert path.name.endswith(".jsonl.gz")
        lines = [json.loads(line) for line in gzip.decompress(path.read_bytes()).decode().splitlines()]
        assert {line["pair_id"]: line["chosen"] for line in lines} == labelled
        assert client.load_export(gz.id, cache_dir=cache).num_rows == 6

        chat = client.export(pid, format="parquet", style="conversational")
        rows = client.load_export(chat.id, cache_dir=cache)  # waits for it first
        assert {row["pair_id"]: row["chosen"] for row in rows} == {
            pair: [{"role": "assistant", "content": text}] for pair, text in labelled.items()
        }
        assert rows[0]["prompt"][-1]["role"] == "user"

    def test_list_latest_manifest_and_an_empty_incremental_export(
        self, client: Client, ingested: dict[str, Any], labelled: dict[str, str], tmp_path: Path
    ) -> None:
        pid = ingested["project"].id
        first = client.wait_for_export(client.export(pid).id, timeout=60, progress=False)
        later = client.wait_for_export(client.export(pid, since=first.id).id, timeout=60, progress=False)
        assert (later.since, later.rows) == (first.id, 0)  # nothing was labelled in between
        empty = client.load_export(later.id, cache_dir=str(tmp_path / "hf-cache"))
        assert empty.num_rows == 0
        assert {"prompt", "chosen", "rejected", "pair_id"} <= set(empty.column_names)

        ids = [run.id for run in client.list_exports(pid)]
        assert ids.index(later.id) < ids.index(first.id)  # newest first
        assert [run.id for run in client.list_exports(pid, status="succeeded")] == ids
        assert client.latest_export(pid).id == later.id
        assert client.latest_export(pid, format="jsonl").id == later.id

        manifest = client.get_manifest(first.id)
        assert manifest["export_id"] == str(first.id)
        assert [f["sha256"] for f in manifest["files"].values()] == [first.sha256]
        with pytest.raises(NotFoundError):
            client.latest_export(client.create_project("client-tests-no-exports").id)

    def test_cli_export(
        self, base_url: str, api_key: str, ingested: dict[str, Any], labelled: dict[str, str], tmp_path: Path
    ) -> None:
        import pyarrow.parquet as pq

        out = tmp_path / "cli.parquet"
        pid = str(ingested["project"].id)
        done = _cli("export", pid, "--format", "parquet", "--out", str(out), url=base_url, key=api_key)
        assert done.returncode == 0, done.stderr
        table = pq.read_table(out).to_pydict()
        assert dict(zip(table["pair_id"], table["chosen"], strict=True)) == labelled
        assert hashlib.sha256(out.read_bytes()).hexdigest() in done.stdout

        missing = _cli("export", str(uuid.uuid4()), "--out", str(out), url=base_url, key=api_key)
        assert missing.returncode == 1
        assert "404 not_found" in missing.stderr
        no_out = _cli("export", str(ingested["project"].id), url=base_url, key=api_key)
        assert no_out.returncode == 2
        assert "--out" in no_out.stderr


class TestErrors:
    def test_unknown_project_is_not_found(self, client: Client) -> None:
        with pytest.raises(NotFoundError) as caught:
            client.get_project(uuid.uuid4())
        error = caught.value
        assert isinstance(error, RealAlignError)
        assert (error.status, error.code) == (404, "not_found")
        assert error.problem["status"] == 404
        with pytest.raises(NotFoundError):
            client.export(uuid.uuid4())

    def test_invalid_input_names_the_field(self, client: Client) -> None:
        with pytest.raises(InvalidInputError) as caught:
            client.create_project("x", budget=-1)
        error = caught.value
        assert (error.status, error.code, error.field) == (422, "invalid_input", "body.budget")

    def test_a_wrong_key_is_an_authentication_error(self, base_url: str) -> None:
        with Client(base_url, "real_not_a_key", retries=0) as bad:
            with pytest.raises(AuthenticationError) as caught:
                bad.list_projects()
        assert caught.value.status == 401
