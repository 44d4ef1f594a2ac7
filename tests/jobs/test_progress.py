"""Job progress: `done` advances as each chunk of prompts is embedded, paired and committed."""

from __future__ import annotations

from typing import Any

import pytest

from app import background

pytestmark = pytest.mark.embedding


def test_done_advances_per_chunk(
    client: Any, db: Any, recorded_tasks: list[Any], override_settings: Any
) -> None:
    override_settings(embed_chunk_prompts=2)
    project = client.post("/v1/projects", json={"name": "progress"}).json()
    items = [
        {"external_id": f"p{i}", "prompt": f"Question {i}?", "responses": [f"yes {i}", f"no {i}", "maybe"]}
        for i in range(6)
    ]
    ingest = client.post(f"/v1/projects/{project['id']}/prompts", json={"items": items})
    assert ingest.status_code == 202, ingest.text
    job_url = f"/v1/jobs/{ingest.json()['job_id']}"

    def seen() -> tuple[str, int, int]:
        job = client.get(job_url).json()
        return job["status"], job["done"], job["total"]

    polls = [seen()]
    chunks = [kwargs for name, kwargs in recorded_tasks if name == "embeddings.embed_prompts"]
    assert [len(c["prompt_ids"]) for c in chunks] == [2, 2, 2]
    for kwargs in chunks:
        background.resolve("embeddings.embed_prompts")(**kwargs)
        polls.append(seen())
    assert polls == [("queued", 0, 6), ("running", 2, 6), ("running", 4, 6), ("succeeded", 6, 6)]
