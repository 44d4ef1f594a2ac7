"""POST /v1/simulations: the budget simulator as a job, on real Postgres, through the embedded runner.

The job's report must be the CLI's, byte for byte, for the same file and parameters: both run the same
steps (app/simulation/pipeline.py) with the real embedding model.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app import cli
from app.auth import service as auth
from app.auth.context import BOOTSTRAP_ADMIN
from app.auth.models import Role
from app.config import get_settings
from app.db.base import utcnow
from app.exports import storage
from app.maintenance.tasks import reconcile
from app.simulation import service, tasks
from app.simulation.models import Simulation, SimulationStatus
from tests.simulation.jobs import TINY_INPUT, TINY_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
ALPACA = ROOT / "data" / "simulation" / "alpaca_eval_500x8.jsonl.gz"
PARAMETERS = {"budgets": [10, 5], "strategies": ["random", "dissimilar"], "repeats": 1, "every": 5, "seed": 7}
REPORT = ["simulation.md", "simulation.json", "accuracy.png", "label_error.png", "labels_needed.png"]


def alpaca_slice(folder: Path, prompts: int = 20) -> Path:
    """The first prompts of the committed AlpacaEval input (8 scored responses each), gzipped."""
    with gzip.open(ALPACA, "rb") as handle:
        lines = [next(handle) for _ in range(prompts)]
    path = folder / f"alpaca_{prompts}.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(lines), mtime=0))
    return path


def submit(
    client: TestClient,
    parameters: dict[str, Any] | str,
    content: bytes,
    name: str = "input.jsonl",
    headers: dict[str, str] | None = None,
) -> Any:
    return client.post(
        "/v1/simulations",
        data={"parameters": parameters if isinstance(parameters, str) else json.dumps(parameters)},
        files={"data": (name, content, "application/octet-stream")},
        headers=headers,
    )


def key_for(db: Any, role: Role, name: str) -> dict[str, str]:
    with db.session() as session:
        created = auth.create_key(
            session, get_settings(), BOOTSTRAP_ADMIN, role=role, name=name, projects=None, expires_at=None
        )
    return {"Authorization": f"Bearer {created.key}"}


def fields_of(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return [error["field"] for error in response.json()["errors"]]


@pytest.mark.embedding
def test_the_job_writes_the_clis_report(client: TestClient, db: Any, tmp_path: Path) -> None:
    path = alpaca_slice(tmp_path)
    created = submit(client, PARAMETERS, path.read_bytes(), path.name)
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["Location"] == f"/v1/simulations/{job['id']}"
    assert (job["status"], job["input"]["prompts"], job["input"]["responses"]) == ("queued", 20, 160)
    assert job["parameters"]["budgets"] == [5, 10]  # sorted, as the CLI's --budget

    # The embedded runner takes it (no broker in tests); follow it as a client would.
    seen: list[tuple[str, str | None, int, int]] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(created.headers["Location"]).json()
        seen.append((job["status"], job["phase"], job["done"], job["total"]))
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job["error"]
    running = [s for s in seen if s[0] == "running" and s[1] is not None]
    assert {phase for _, phase, _, _ in running} >= {"embedding"}, seen
    assert all(0 <= done <= total for _, _, done, total in running), seen
    assert (job["done"], job["total"]) == (2, 2)  # 1 repeat x 2 strategies
    assert job["heartbeat_at"] is not None
    assert job["finished_at"] is not None
    assert [f["name"] for f in job["files"]] == REPORT

    files = {f["name"]: client.get(f["url"]) for f in job["files"]}
    for name, response in files.items():
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(service.media_type(name).split(";")[0])
    assert files["accuracy.png"].content[:4] == b"\x89PNG"
    assert "![accuracy](accuracy.png)" in files["simulation.md"].text

    # The CLI on the same file and parameters writes the same report.
    out = tmp_path / "cli"
    argv = ["simulate", "--data", str(path), "--budget", "5,10", "--strategies", "random,dissimilar"]
    argv += ["--repeats", "1", "--every", "5", "--seed", "7", "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    assert files["simulation.json"].content == (out / "simulation.json").read_bytes()
    assert files["simulation.md"].content == (out / "simulation.md").read_bytes()
    summary = json.loads(files["simulation.json"].content)
    assert summary["data"]["sha256"] == job["input"]["sha256"]
    assert set(summary["strategies"]) == {"random", "dissimilar"}

    # Stored under the export storage, beside nothing of the projects'.
    with db.session() as session:
        location = session.get_one(Simulation, job["id"]).location
    assert location == f"{storage.root(get_settings())}/simulations/{job['id']}"
    assert storage.exists(location, "input.jsonl.gz")


class TestInvalidRequests:
    @pytest.mark.parametrize(
        ("parameters", "field"),
        [
            ({"strategies": ["random"]}, "body.parameters.budgets"),
            ({"budgets": [0, 1]}, "body.parameters.budgets"),
            ({"budgets": [1], "strategies": ["random", "best"]}, "body.parameters.strategies"),
            ({"budgets": [1], "held_out": 1.5}, "body.parameters.held_out"),
            ({"budgets": [1], "repeats": 0}, "body.parameters.repeats"),
            ({"budgets": [1], "repeats": 10_000}, "body.parameters.repeats"),
            ({"budgets": [1], "noise": "loud"}, "body.parameters.noise"),
            ({"budgets": [1], "noise": "similarity", "epsilon_max": 2}, "body.parameters.epsilon_max"),
            (
                {"budgets": [1], "noise": "similarity", "similarity_low": 0.9, "similarity_high": 0.1},
                "body.parameters.similarity_high",
            ),
            ({"budgets": [1], "l2": 0}, "body.parameters.l2"),
            ({"budgets": [1], "novelty_weight": -1}, "body.parameters.novelty_weight"),
            ({"budgets": [1], "embedding_model": "some/hub-model"}, "body.parameters.embedding_model"),
            ({"budgets": [1], "colour": "blue"}, "body.parameters.colour"),
            ({"budgets": [3]}, "body.parameters.budgets"),  # 3 prompts leave 2 to label
            ({"budgets": [2], "every": 1, "held_out": 0.5}, "body.parameters.budgets"),
        ],
    )
    def test_a_bad_parameter_is_named(
        self, client: TestClient, recorded_tasks: list[Any], parameters: dict[str, Any], field: str
    ) -> None:
        assert fields_of(submit(client, parameters, TINY_INPUT)) == [field]
        assert recorded_tasks == []

    def test_parameters_that_are_not_json_are_named(self, client: TestClient) -> None:
        assert fields_of(submit(client, "budgets=10", TINY_INPUT)) == ["body.parameters"]

    def test_too_many_checkpoints_are_refused(self, client: TestClient) -> None:
        lines = b"".join(
            json.dumps({"prompt": f"q{n}", "chosen": "a", "rejected": "b", "external_id": f"p{n}"}).encode()
            + b"\n"
            for n in range(1_300)
        )
        assert fields_of(submit(client, {"budgets": [1_001], "every": 1}, lines)) == ["body.parameters.every"]

    def test_a_bad_line_is_refused_with_its_number(self, client: TestClient) -> None:
        bad = TINY_INPUT + b'{"prompt": "q", "chosen": "a"}\n'
        response = submit(client, TINY_PARAMETERS, bad)
        assert fields_of(response) == ["body.data"]
        assert response.json()["errors"][0]["message"] == "line 4: missing field 'rejected'"
        response = submit(client, TINY_PARAMETERS, gzip.compress(b"{not json\n"), "x.jsonl.gz")
        assert response.json()["errors"][0]["message"].startswith("line 1: not JSON")

    def test_a_missing_file_is_named(self, client: TestClient) -> None:
        response = client.post("/v1/simulations", data={"parameters": json.dumps(TINY_PARAMETERS)})
        assert fields_of(response) == ["body.data"]

    def test_inputs_over_the_caps_are_refused(self, client: TestClient, override_settings: Any) -> None:
        override_settings(simulation_max_prompts=2)
        response = submit(client, TINY_PARAMETERS, TINY_INPUT)
        assert fields_of(response) == ["body.data"]
        assert "at most 2 (REAL_SIMULATION_MAX_PROMPTS)" in response.json()["detail"]
        override_settings(simulation_max_prompts=10, simulation_max_responses=5)
        assert fields_of(submit(client, TINY_PARAMETERS, TINY_INPUT)) == ["body.data"]
        # A gzip file that unpacks past the cap is refused before it is parsed.
        override_settings(simulation_max_responses=1000, simulation_max_input_bytes=1024)
        response = submit(client, TINY_PARAMETERS, gzip.compress(TINY_INPUT * 20), "big.jsonl.gz")
        assert "unpacks to over 1024 bytes" in response.json()["errors"][0]["message"]

    def test_a_body_over_the_limit_is_413(self, db: Any, override_settings: Any) -> None:
        from app.main import create_app
        from tests.conftest import ADMIN_KEY

        override_settings(max_body_bytes=4096)
        app = create_app(admin_key=ADMIN_KEY, start_runner=False)
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as small:
            response = submit(small, TINY_PARAMETERS, TINY_INPUT * 100)
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"


def test_a_simulation_is_seen_by_its_principal_and_admins_only(
    client: TestClient, db: Any, recorded_tasks: list[Any]
) -> None:
    alice, bob = key_for(db, Role.DATA_TEAM, "alice"), key_for(db, Role.DATA_TEAM, "bob")
    annotator = key_for(db, Role.ANNOTATOR, "carol")
    created = submit(client, TINY_PARAMETERS, TINY_INPUT, headers=alice)
    assert created.status_code == 202
    location = created.headers["Location"]
    assert recorded_tasks == [("simulations.run", {"simulation_id": created.json()["id"]})]
    assert client.get(location, headers=alice).json()["created_by"] == "alice"
    assert client.get(location).status_code == 200  # the admin key
    assert client.get(location, headers=bob).status_code == 404
    assert client.get(location, headers=annotator).status_code == 403
    assert client.get(f"{location}/files/simulation.md", headers=bob).status_code == 404
    assert client.get(f"{location}/files/simulation.md", headers=alice).status_code == 409  # not run yet
    assert [s["id"] for s in client.get("/v1/simulations", headers=alice).json()["items"]] == [
        created.json()["id"]
    ]
    assert client.get("/v1/simulations", headers=bob).json()["items"] == []
    assert len(client.get("/v1/simulations").json()["items"]) == 1


class TestWorkerFailures:
    def test_an_error_in_the_job_marks_it_failed(
        self, client: TestClient, db: Any, recorded_tasks: list[Any]
    ) -> None:
        job = submit(client, TINY_PARAMETERS, TINY_INPUT).json()
        with db.session() as session:
            location = session.get_one(Simulation, job["id"]).location
        storage_path = storage.local_path(location, "input.jsonl")
        assert storage_path is not None
        Path(storage_path).unlink()
        with pytest.raises(FileNotFoundError):
            tasks.run_simulation(job["id"])
        failed = client.get(f"/v1/simulations/{job['id']}").json()
        assert failed["status"] == "failed"
        assert failed["error"].startswith("FileNotFoundError")
        assert failed["finished_at"] is not None
        tasks.run_simulation(job["id"])  # a duplicate send finds nothing queued and does nothing

    def test_a_job_whose_worker_died_is_marked_failed(
        self, client: TestClient, db: Any, recorded_tasks: list[Any]
    ) -> None:
        job = submit(client, TINY_PARAMETERS, TINY_INPUT).json()
        with db.session() as session:
            attempt = service.take(session, job["id"])
        assert attempt == 1
        assert reconcile()["stale_simulations"] == 0  # heartbeat fresh: still running
        stale = utcnow() - timedelta(seconds=get_settings().simulation_stale_after_seconds + 1)
        with db.session() as session:
            session.execute(update(Simulation).where(Simulation.id == job["id"]).values(heartbeat_at=stale))
        assert reconcile()["stale_simulations"] == 1
        failed = client.get(f"/v1/simulations/{job['id']}").json()
        assert failed["status"] == SimulationStatus.FAILED
        assert "the worker stopped" in failed["error"]
        # The worker, were it only slow, learns at its next beat that the job is no longer its own.
        with db.session() as session, pytest.raises(service.Superseded):
            service.beat(session, job["id"], attempt)

    def test_a_queued_job_whose_send_was_lost_is_sent_again(
        self, client: TestClient, db: Any, recorded_tasks: list[Any]
    ) -> None:
        job = submit(client, TINY_PARAMETERS, TINY_INPUT).json()
        recorded_tasks.clear()
        assert reconcile(older_than_seconds=0)["simulations"] == 1
        assert ("simulations.run", {"simulation_id": job["id"]}) in recorded_tasks
