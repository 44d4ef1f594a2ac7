"""Simulation jobs: check a request, queue it, follow and finish it, and find its files.

The job runs the CLI's own steps (``app/simulation/pipeline.py``) in a worker (``app/simulation/tasks.py``).
A simulation belongs to the principal that asked for it; admins see every one, anyone else gets 404.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, false, select, true, update
from sqlalchemy.orm import Session

from app.api.pagination import PageRows, paginate
from app.audit import service as audit
from app.auth.context import Caller
from app.config import Settings, get_settings
from app.db.after_commit import send_after_commit
from app.db.base import utcnow
from app.db.ids import uuid7
from app.errors import Conflict, FieldError, InvalidInput, NotFound
from app.exports import storage
from app.simulation import engine, pipeline
from app.simulation.errors import ParameterError
from app.simulation.inputs import InputError, SimulationInput, parse_bytes
from app.simulation.models import Simulation, SimulationPhase, SimulationStatus
from app.simulation.schemas import SimulationParameters

TASK = "simulations.run"
# Checkpoints per run (every `every` labels up to the full budget): each one fits the reward model again.
MAX_CHECKPOINTS = 1_000
MEDIA_TYPES = {
    ".md": "text/markdown; charset=utf-8",
    ".json": "application/json",
    ".png": "image/png",
}
_GZIP_MAGIC = b"\x1f\x8b"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f]")


class Superseded(Exception):
    """This attempt no longer holds the simulation (it was failed as stale, or taken over)."""


def location_for(settings: Settings, simulation_id: uuid.UUID) -> str:
    """The folder (path or URL) of one simulation, under the export storage."""
    return f"{storage.root(settings)}/simulations/{simulation_id}"


def config_of(parameters: SimulationParameters) -> engine.Config:
    """The engine's configuration; ParameterError (naming the parameters) where a value is out of range."""
    noise = pipeline.noise_model(
        parameters.noise,
        epsilon=parameters.epsilon,
        epsilon_min=parameters.epsilon_min,
        epsilon_max=parameters.epsilon_max,
        similarity_low=parameters.similarity_low,
        similarity_high=parameters.similarity_high,
    )
    return engine.Config(
        budgets=tuple(parameters.budgets),
        strategies=tuple(parameters.strategies),
        repeats=parameters.repeats,
        noise=noise,
        seed=parameters.seed,
        held_out=parameters.held_out,
        round_size=parameters.round_size,
        every=parameters.every,
        l2=parameters.l2,
        near_duplicate_threshold=parameters.near_duplicate_threshold,
        uncertainty_weight=parameters.uncertainty_weight,
        novelty_weight=parameters.novelty_weight,
    )


def _parameter_error(fields: tuple[str, ...], message: str) -> InvalidInput:
    return InvalidInput(
        message, errors=[FieldError(field=f"body.parameters.{name}", message=message) for name in fields]
    )


def _data_error(message: str) -> InvalidInput:
    return InvalidInput(message, field="body.data")


def upload_name(filename: str | None) -> str:
    """The uploaded file's own name (no folders, no control characters), for the report; "upload.jsonl"
    when it has none."""
    name = _UNSAFE_NAME.sub("", Path((filename or "").replace("\\", "/")).name).strip()
    return name[:200] or "upload.jsonl"


@dataclass(frozen=True)
class Checked:
    """A request that passed every check: the engine's configuration and the parsed input."""

    config: engine.Config
    data: SimulationInput


def check(parameters: SimulationParameters, raw: bytes, name: str, settings: Settings) -> Checked:
    """The request as the CLI checks it, and the caps on CPU; InvalidInput naming the field or the line."""
    try:
        config = config_of(parameters)
    except ParameterError as exc:
        raise _parameter_error(exc.fields, str(exc)) from None
    try:
        data = parse_bytes(raw, name, settings.simulation_max_input_bytes)
    except InputError as exc:
        where = f"line {exc.line}: " if exc.line else ""
        raise _data_error(where + exc.message) from None
    prompts, responses = len(data.prompts), len(data.texts())
    if prompts > settings.simulation_max_prompts:
        raise _data_error(
            f"{prompts} prompts; a simulation takes at most {settings.simulation_max_prompts} "
            "(REAL_SIMULATION_MAX_PROMPTS)"
        )
    if responses > settings.simulation_max_responses:
        raise _data_error(
            f"{responses} responses; a simulation takes at most {settings.simulation_max_responses} "
            "(REAL_SIMULATION_MAX_RESPONSES)"
        )
    if prompts < 2:
        raise _data_error("a simulation needs at least 2 prompts (one to label, one held out)")
    training = prompts - engine.held_out_count(prompts, config.held_out)
    if config.full_budget > training:
        # The engine's own check (after near-duplicate collapse) runs in the job; this bound needs no vectors.
        raise _parameter_error(
            ("budgets",),
            f"the full budget of {config.full_budget} labels needs as many training prompts (one label per "
            f"prompt), but {prompts} prompts leave {training} once held_out {config.held_out} is set aside",
        )
    if len(config.checkpoints()) > MAX_CHECKPOINTS:
        raise _parameter_error(
            ("every",),
            f"{len(config.checkpoints())} checkpoints (every {config.every} labels up to "
            f"{config.full_budget}); at most {MAX_CHECKPOINTS}: raise every",
        )
    return Checked(config, data)


def create(
    session: Session,
    caller: Caller,
    parameters: SimulationParameters,
    raw: bytes,
    filename: str | None,
    settings: Settings | None = None,
) -> Simulation:
    """Check the request, store its input under the export storage and queue the job."""
    settings = settings or get_settings()
    name = upload_name(filename)
    checked = check(parameters, raw, name, settings)
    model = parameters.embedding_model or settings.embedding_model
    simulation_id = uuid7()
    location = location_for(settings, simulation_id)
    input_file = "input.jsonl.gz" if raw[:2] == _GZIP_MAGIC else "input.jsonl"
    with storage.write(location, input_file) as handle:
        handle.write(raw)
    simulation = Simulation(
        id=simulation_id,
        created_by_principal_id=caller.principal_id,
        created_by=caller.name,
        parameters=parameters.model_copy(update={"embedding_model": model}).model_dump(mode="json"),
        embedding_model=model,
        input_name=name,
        input_file=input_file,
        input_sha256=hashlib.sha256(raw).hexdigest(),
        input_bytes=len(raw),
        input_format=checked.data.format,
        prompts=len(checked.data.prompts),
        responses=len(checked.data.texts()),
        location=location,
        status=SimulationStatus.QUEUED,
        done=0,
        total=0,
        attempts=0,
    )
    session.add(simulation)
    session.flush()
    audit.record(
        session,
        caller,
        "simulation.create",
        "simulation",
        simulation.id,
        {"input_sha256": simulation.input_sha256, "prompts": simulation.prompts},
    )
    send_after_commit(session, TASK, simulation_id=str(simulation.id))
    return simulation


def visible_filter(caller: Caller) -> ColumnElement[bool]:
    """The SQL condition for the simulations a caller may see: its own principal's, or all for admins."""
    if caller.is_admin:
        return true()
    if caller.principal_id is None:
        return false()
    return Simulation.created_by_principal_id == caller.principal_id


def get(session: Session, caller: Caller, simulation_id: uuid.UUID) -> Simulation:
    """A simulation the caller may see, or 404 (another principal's is the same as a missing one)."""
    simulation = session.scalar(
        select(Simulation).where(Simulation.id == simulation_id, visible_filter(caller))
    )
    if simulation is None:
        raise NotFound(f"no simulation {simulation_id}")
    return simulation


def list_visible(session: Session, caller: Caller, *, limit: int, cursor: str | None) -> PageRows[Simulation]:
    """A page of the simulations the caller may see, newest first."""
    query = select(Simulation).where(visible_filter(caller))
    return paginate(session, query, Simulation.id, limit=limit, cursor=cursor, descending=True)


def file_of(simulation: Simulation, name: str) -> dict[str, Any]:
    """One of a succeeded simulation's report files; 404 for a name it has not, 409 before it succeeded."""
    if simulation.status != SimulationStatus.SUCCEEDED:
        raise Conflict(f"simulation {simulation.id} is {simulation.status}; its files come once it succeeded")
    for entry in simulation.files or []:
        if entry["name"] == name:
            return entry
    raise NotFound(f"simulation {simulation.id} has no file {name!r}")


def media_type(name: str) -> str:
    """The media type of a report file, by its suffix."""
    return MEDIA_TYPES.get(Path(name).suffix, "application/octet-stream")


def publish(location: str, path: Path) -> dict[str, Any]:
    """Copy one report file into the storage; its entry in ``Simulation.files``."""
    content = path.read_bytes()
    with storage.write(location, path.name) as handle:
        handle.write(content)
    return {
        "name": path.name,
        "media_type": media_type(path.name),
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def take(session: Session, simulation_id: uuid.UUID) -> int | None:
    """Compare-and-set queued → running; the attempt number now held, or None if it is not queued."""
    simulation = session.get(Simulation, simulation_id)
    if simulation is None or simulation.status != SimulationStatus.QUEUED:
        return None
    now = utcnow()
    taken = session.execute(
        update(Simulation)
        .where(
            Simulation.id == simulation_id,
            Simulation.status == SimulationStatus.QUEUED,
            Simulation.attempts == simulation.attempts,
        )
        .values(
            status=SimulationStatus.RUNNING,
            attempts=simulation.attempts + 1,
            started_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return simulation.attempts + 1 if taken.rowcount == 1 else None  # type: ignore[attr-defined]


def _held(simulation_id: uuid.UUID, attempt: int) -> tuple[ColumnElement[bool], ...]:
    return (
        Simulation.id == simulation_id,
        Simulation.status == SimulationStatus.RUNNING,
        Simulation.attempts == attempt,
    )


def beat(
    session: Session,
    simulation_id: uuid.UUID,
    attempt: int,
    progress: tuple[SimulationPhase, int, int] | None = None,
) -> None:
    """Mark the job alive, with its progress (phase, done, total) if given; Superseded once it is lost."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values.update(phase=progress[0], done=progress[1], total=progress[2])
    held = session.execute(
        update(Simulation)
        .where(*_held(simulation_id, attempt))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if held.rowcount != 1:  # type: ignore[attr-defined]
        raise Superseded(str(simulation_id))


def finish(session: Session, simulation_id: uuid.UUID, attempt: int, files: list[dict[str, Any]]) -> None:
    """Mark the job succeeded with its report files; Superseded if this attempt no longer holds it."""
    done = session.execute(
        update(Simulation)
        .where(*_held(simulation_id, attempt))
        .values(status=SimulationStatus.SUCCEEDED, phase=None, files=files, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Superseded(str(simulation_id))


def describe(error: BaseException) -> str:
    """An error as the job reports it: the engine's data errors read as sentences, anything else by type."""
    if isinstance(error, ValueError):
        return str(error)[:2000]
    return f"{type(error).__name__}: {error}"[:2000]


def fail(session: Session, simulation_id: uuid.UUID, attempt: int, error: BaseException) -> None:
    """Mark the job this attempt holds failed, with the error."""
    session.execute(
        update(Simulation)
        .where(*_held(simulation_id, attempt))
        .values(status=SimulationStatus.FAILED, error=describe(error), finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def fail_stale(
    session: Session, now: datetime | None = None, stale_after_seconds: float | None = None
) -> int:
    """Mark failed the running jobs whose worker stopped heartbeating (killed, out of memory, restarted);
    how many. A simulation is not retried on its own: the same input would likely stop the worker again."""
    settings = get_settings()
    now = now or utcnow()
    age = settings.simulation_stale_after_seconds if stale_after_seconds is None else stale_after_seconds
    failed = session.execute(
        update(Simulation)
        .where(
            Simulation.status == SimulationStatus.RUNNING,
            Simulation.heartbeat_at < now - timedelta(seconds=age),
        )
        .values(
            status=SimulationStatus.FAILED,
            error=f"the worker stopped: no heartbeat for over {age:g} s (killed, out of memory or "
            "restarted); submit the simulation again",
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(failed.rowcount)  # type: ignore[attr-defined]


def queued_before(session: Session, cutoff: datetime) -> list[str]:
    """Simulations queued since before ``cutoff`` (their send was lost); sending one twice is harmless."""
    query = select(Simulation.id).where(
        Simulation.status == SimulationStatus.QUEUED, Simulation.created_at <= cutoff
    )
    return [str(s) for s in session.scalars(query)]
