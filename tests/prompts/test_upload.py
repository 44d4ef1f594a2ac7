"""The streamed JSONL upload: per-line errors, gzip, idempotent re-upload, its own body cap, job counters."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.jobs.models import Job
from app.prompts.models import Prompt, Response
from real_align.records import Columns, to_item
from tests.conftest import ADMIN_KEY


def line(n: int, **extra: Any) -> bytes:
    item = {"external_id": f"u{n}", "prompt": f"Question {n}?", "responses": [f"yes {n}", f"no {n}", "maybe"]}
    return json.dumps({**item, **extra}).encode() + b"\n"


def pieces(blob: bytes, size: int = 97) -> Iterator[bytes]:
    """The body in small pieces (a chunked request, read as a stream), cutting lines and gzip blocks."""
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def prompts(session: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(Prompt)))


@pytest.fixture
def project_id(client: Any) -> str:
    return str(client.post("/v1/projects", json={"name": "upload"}).json()["id"])


def upload(client: Any, project_id: str, body: Any, **headers: str) -> Any:
    return client.post(f"/v1/projects/{project_id}/prompts:upload", content=body, headers=headers)


class TestUpload:
    def test_gzip_with_bad_lines_in_the_middle(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(upload_batch_lines=4, embed_chunk_prompts=3)
        rows = [line(n) for n in range(1, 13)]
        rows[4] = b'{"external_id": "u5", "prompt": "cut off\n'  # line 5: not JSON
        rows[6] = line(7, responses=["only one"])  # line 7: too few responses
        rows[8] = b"   \n"  # line 9: blank, skipped
        blob = gzip.compress(b"".join(rows))
        response = upload(client, project_id, pieces(blob))  # gzip found by its magic bytes
        assert response.status_code == 202, response.text
        result = response.json()
        assert (result["lines"], result["accepted"], result["duplicates"], result["errors"]) == (12, 9, 0, 2)
        assert result["complete"] is True
        assert prompts(session) == 9
        assert session.scalar(select(func.count()).select_from(Response)) == 27
        stored = {p for (p,) in session.execute(select(Prompt.external_id))}
        assert stored == {f"u{n}" for n in range(1, 13)} - {"u5", "u7", "u9"}
        # A line is all in or all out: the refused ones left nothing behind.
        errors = client.get(f"/v1/jobs/{result['job_id']}/errors").json()["items"]
        assert [(e["line"], e["field"]) for e in errors] == [(5, None), (7, "responses")]
        assert errors[0]["detail"].startswith("not JSON")
        assert errors[1]["external_id"] == "u7"
        assert "at least 2" in errors[1]["detail"]
        job = client.get(f"/v1/jobs/{result['job_id']}").json()
        assert job["kind"] == "upload"
        assert (job["status"], job["done"], job["total"]) == ("queued", 0, 9)
        assert job["upload"] == {"lines": 12, "accepted": 9, "duplicates": 0, "errors": 2, "received": True}
        sent = [kwargs["prompt_ids"] for name, kwargs in recorded_tasks if name == "embeddings.embed_prompts"]
        assert [len(ids) for ids in sent] == [3, 1, 2, 3]  # per batch of 4 lines, in chunks of 3

    def test_content_encoding_gzip_and_errors_are_paginated(
        self, client: Any, project_id: str, recorded_tasks: list[Any]
    ) -> None:
        rows = [line(n) if n % 2 else b"[1, 2]\n" for n in range(1, 8)]
        body = gzip.compress(b"".join(rows))
        result = upload(client, project_id, pieces(body, 5), **{"Content-Encoding": "gzip"}).json()
        assert (result["accepted"], result["errors"]) == (4, 3)
        url = f"/v1/jobs/{result['job_id']}/errors"
        first = client.get(url, params={"limit": 2}).json()
        second = client.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [e["line"] for e in first["items"] + second["items"]] == [2, 4, 6]
        assert second["next_cursor"] is None
        # Two items on one line, in a batch of good lines: that line is refused, not split.
        double = upload(client, project_id, line(70) + line(71).rstrip() + b", " + line(72)).json()
        assert (double["lines"], double["accepted"], double["errors"]) == (2, 1, 1)

    def test_uploading_again_stores_nothing_twice(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any]
    ) -> None:
        blob = b"".join(line(n) for n in range(1, 6))
        first = upload(client, project_id, blob).json()
        again = upload(client, project_id, pieces(blob)).json()
        assert (first["accepted"], first["duplicates"]) == (5, 0)
        assert (again["accepted"], again["duplicates"], again["errors"]) == (0, 5, 0)
        assert prompts(session) == 5
        # Other content under a stored external id: that line is refused, the rest goes in.
        changed = upload(client, project_id, line(2, prompt="Something else?") + line(6)).json()
        assert (changed["accepted"], changed["errors"]) == (1, 1)
        error = client.get(f"/v1/jobs/{changed['job_id']}/errors").json()["items"][0]
        assert (error["line"], error["external_id"], error["field"]) == (1, "u2", "external_id")
        kept = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/u2").json()
        assert kept["prompt"] == "Question 2?"
        assert session.scalar(select(func.count()).select_from(Job)) == 3

    def test_repeats_in_a_new_file_and_a_file_partly_stored(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        """A new file's batches are COPYed straight in: its own repeats are still duplicates or conflicts,
        text that COPY must escape arrives intact, and a batch naming stored ids is classified again."""
        override_settings(upload_batch_lines=4)
        special = line(
            3,
            prompt="Tab\there, back\\slash\nnew line\r",
            responses=["a\tb", {"text": "c\\N", "model": "m\\1", "external_id": "r\n"}],
            metadata={"k": "v\\\n\t", "\\N": None},
        )
        rows = [line(1), line(2), special, line(1), line(2, prompt="Other?"), line(4), line(5), line(6)]
        result = upload(client, project_id, b"".join(rows)).json()
        assert (result["accepted"], result["duplicates"], result["errors"]) == (6, 1, 1)
        errors = client.get(f"/v1/jobs/{result['job_id']}/errors").json()["items"]
        assert [(e["line"], e["external_id"], e["field"]) for e in errors] == [(5, "u2", "external_id")]
        stored = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/u3").json()
        assert stored["prompt"] == "Tab\there, back\\slash\nnew line\r"
        assert stored["metadata"] == {"k": "v\\\n\t", "\\N": None}
        assert [(r["text"], r["model"], r["external_id"]) for r in stored["responses"]] == [
            ("a\tb", None, None),
            ("c\\N", "m\\1", "r\n"),
        ]
        assert upload(client, project_id, special).json()["duplicates"] == 1  # same fingerprint stored
        # Batch 2 names two stored ids among new ones; batches 1 and 3 are new.
        again = [line(n) for n in range(7, 11)] + [line(5), line(11), line(6), line(12)]
        again += [line(n) for n in range(13, 17)]
        second = upload(client, project_id, b"".join(again)).json()
        assert (second["accepted"], second["duplicates"], second["errors"]) == (10, 2, 0)
        assert prompts(session) == 16
        assert session.scalar(select(func.count()).select_from(Response)) == 15 * 3 + 2
        sent = {
            i for name, kw in recorded_tasks if name == "embeddings.embed_prompts" for i in kw["prompt_ids"]
        }
        assert sent == {str(i) for (i,) in session.execute(select(Prompt.id))}

    def test_a_line_without_external_id_gets_the_clients_id(
        self, client: Any, project_id: str, recorded_tasks: list[Any]
    ) -> None:
        record = {"prompt": "Hi?", "responses": ["Hello!", {"text": "Go away.", "model": None}]}
        result = upload(client, project_id, json.dumps(record).encode()).json()  # no final newline
        assert (result["lines"], result["accepted"]) == (1, 1)
        expected = to_item(record, Columns())["external_id"]
        assert expected.startswith("sha256:")
        found = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/{expected}")
        assert found.status_code == 200

    def test_a_line_over_the_line_cap_is_refused_alone(
        self, client: Any, project_id: str, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(max_body_bytes=2048)
        with TestClient(_app(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as small:
            long = line(2, metadata={"pad": "x" * 4000})
            result = upload(small, project_id, pieces(line(1) + long + line(3), 500)).json()
        assert (result["lines"], result["accepted"], result["errors"]) == (3, 2, 1)

    def test_a_body_over_the_json_limit_is_accepted_here_only(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(max_body_bytes=4096)
        blob = b"".join(line(n) for n in range(1, 201))  # about 18 KB
        items = [json.loads(row) for row in blob.splitlines()]
        with TestClient(_app(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as small:
            refused = small.post(f"/v1/projects/{project_id}/prompts", json={"items": items})
            assert refused.status_code == 413
            assert upload(small, project_id, blob).json()["accepted"] == 200
            assert upload(small, project_id, pieces(blob, 4000)).json()["duplicates"] == 200
        assert prompts(session) == 200

    def test_its_own_cap_when_set(
        self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any], override_settings: Any
    ) -> None:
        override_settings(max_upload_bytes=4096)
        blob = b"".join(line(n) for n in range(1, 201))
        with TestClient(_app(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as small:
            response = upload(small, project_id, blob)
        assert response.status_code == 413
        assert prompts(session) == 0

    def test_refusals(self, client: Any, project_id: str, session: Any, recorded_tasks: list[Any]) -> None:
        other = upload(client, project_id, line(1), **{"Content-Encoding": "br"})
        assert other.status_code == 415
        assert other.headers["content-type"] == "application/problem+json"
        broken = upload(client, project_id, b"\x1f\x8b not gzip at all", **{"Content-Encoding": "gzip"})
        assert broken.status_code == 422
        assert broken.json()["errors"][0]["field"] == "body"
        truncated = upload(client, project_id, gzip.compress(line(1) + line(2))[:-12])
        assert truncated.status_code == 202
        assert truncated.json()["complete"] is False
        assert "ends early" in truncated.json()["error"]
        job = client.get(f"/v1/jobs/{truncated.json()['job_id']}").json()
        assert job["status"] == "failed"
        assert prompts(session) == 1  # the complete first line went in
        empty = upload(client, project_id, b"")
        assert empty.status_code == 422
        assert empty.json()["errors"][0]["field"] == "body"
        archived = client.post("/v1/projects", json={"name": "gone"}).json()["id"]
        client.delete(f"/v1/projects/{archived}")
        assert upload(client, archived, line(1)).status_code == 404


def test_on_sqlite(sqlite_app: Any, recorded_tasks: list[Any]) -> None:
    """The embedded default: the upload takes the request lock per batch, and other requests get in."""
    with TestClient(_app(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        project_id = client.post("/v1/projects", json={"name": "lite"}).json()["id"]
        blob = b"".join(line(n) for n in range(1, 2501)) + b"oops\n"
        result = upload(client, project_id, pieces(blob, 10_000)).json()
        assert (result["lines"], result["accepted"], result["errors"]) == (2501, 2500, 1)
        assert upload(client, project_id, blob).json()["duplicates"] == 2500
        stored = client.get(f"/v1/projects/{project_id}/prompts/by-external-id/u2500").json()
        assert [r["text"] for r in stored["responses"]] == ["yes 2500", "no 2500", "maybe"]


def _app() -> Any:
    from app.main import create_app

    return create_app(admin_key=ADMIN_KEY, start_runner=False)
