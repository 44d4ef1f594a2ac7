"""The simulation job's task: the CLI's steps (``pipeline``) on the stored input, progress and a heartbeat
written as it goes, the report copied into the storage; any error marks the job failed with it.

No retry: a simulation is minutes of CPU, and what fails it (bad data for the budget, a worker out of memory)
fails it again. A worker that dies leaves the job running with a stale heartbeat, and
``maintenance.reconcile`` marks it failed.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import uuid
from pathlib import Path

from app.config import get_settings
from app.db.session import Database, get_database
from app.exports import storage
from app.simulation import pipeline, service
from app.simulation.inputs import parse_bytes
from app.simulation.models import Simulation, SimulationPhase
from app.simulation.schemas import SimulationParameters
from app.simulation.service import Superseded
from app.simulation.vectors import embed
from app.tasks import task

log = logging.getLogger(__name__)


class Heartbeat:
    """Writes the job's progress as it comes, and beats every ``interval`` seconds from a thread of its own
    meanwhile (loading the model or one long run writes no progress); ``lost`` once the job was taken away."""

    def __init__(self, db: Database, simulation_id: uuid.UUID, attempt: int, interval: float) -> None:
        self.db, self.simulation_id, self.attempt, self.interval = db, simulation_id, attempt, interval
        self.lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"simulation-heartbeat-{simulation_id}")

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self, progress: tuple[SimulationPhase, int, int] | None) -> None:
        with self._lock:
            if self.lost:
                raise Superseded(str(self.simulation_id))
            try:
                with self.db.session() as session:
                    service.beat(session, self.simulation_id, self.attempt, progress)
            except Superseded:
                self.lost = True
                raise

    def progress(self, phase: SimulationPhase, done: int, total: int) -> None:
        """Record progress (and a beat); Superseded once this attempt no longer holds the job."""
        self._write((phase, done, total))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._write(None)
            except Superseded:
                return
            except Exception:
                # The database is away for a moment: the next beat, or the progress, tries again.
                log.warning("simulations.heartbeat_failed", extra={"simulation_id": str(self.simulation_id)})


@task("simulations.run")
def run_simulation(simulation_id: str) -> None:
    """Run a queued simulation and store its report (simulation.md, simulation.json, the PNG plots)."""
    db = get_database()
    sid = uuid.UUID(simulation_id)
    with db.session() as session:
        held = service.take(session, sid)
    if held is None:
        return  # running elsewhere, or finished: a duplicate send
    settings = get_settings()
    try:
        with Heartbeat(db, sid, held, settings.simulation_heartbeat_seconds) as heartbeat:
            with db.session() as session:
                simulation = session.get_one(Simulation, sid)
                session.expunge(simulation)
            files = _simulate(simulation, heartbeat, settings.simulation_max_input_bytes)
        with db.session() as session:
            service.finish(session, sid, held, files)
        log.info("simulations.finished", extra={"simulation_id": simulation_id, "files": len(files)})
    except Superseded:
        log.warning("simulations.superseded", extra={"simulation_id": simulation_id, "attempt": held})
    except Exception as exc:
        with db.session() as session:
            service.fail(session, sid, held, exc)
        log.warning("simulations.failed", extra={"simulation_id": simulation_id, "error": repr(exc)[:500]})
        raise


def _simulate(simulation: Simulation, heartbeat: Heartbeat, max_input_bytes: int) -> list[dict[str, object]]:
    """The CLI's steps on the stored input; the report's file entries, once copied into the storage."""
    raw = storage.read_bytes(simulation.location, simulation.input_file)
    data = parse_bytes(raw, simulation.input_name, max_input_bytes)
    parameters = SimulationParameters.model_validate(simulation.parameters)
    config = service.config_of(parameters)
    model = simulation.embedding_model
    texts = data.texts()
    with tempfile.TemporaryDirectory(prefix="real-align-simulation-") as folder:
        heartbeat.progress(SimulationPhase.EMBEDDING, 0, len(set(texts)))
        vectors = embed(
            texts,
            model,
            Path(folder) / "embeddings.npz",
            pipeline.encoder_for(model),
            lambda done, todo: heartbeat.progress(SimulationPhase.EMBEDDING, done, todo),
        )
        runs = config.repeats * len(config.strategies)
        heartbeat.progress(SimulationPhase.SIMULATING, 0, runs)
        pool, result = pipeline.simulate(
            data,
            vectors,
            config,
            lambda done, total: heartbeat.progress(SimulationPhase.SIMULATING, done, total),
        )
        heartbeat.progress(SimulationPhase.WRITING, runs, runs)
        summary = pipeline.summarise(
            data, pool, result, pipeline.Source(simulation.input_name, simulation.input_sha256, model)
        )
        paths = pipeline.write(summary, Path(folder) / "report")
        return [service.publish(simulation.location, path) for path in paths]
