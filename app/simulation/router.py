"""Budget simulations as jobs: submit one (parameters + an input file), follow it, download its report."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Response, UploadFile, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import ValidationError

from app.api.deps import DataTeamDep, SessionDep
from app.api.pagination import CursorQuery, LimitQuery, Page
from app.api.responses import problems
from app.exports import storage
from app.schemas import NoNulStr
from app.simulation import service
from app.simulation.models import Simulation, SimulationPhase, SimulationStatus
from app.simulation.schemas import SimulationFile, SimulationInputRead, SimulationParameters, SimulationRead

router = APIRouter(tags=["simulations"])

_FILE_TYPES = {
    "text/markdown": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
}
PARAMETERS_HELP = (
    'A JSON object: {"budgets": [50, 100, 200], "strategies": [...], "repeats": 5, "seed": 0, "noise": '
    '"constant" | "similarity", "epsilon", "epsilon_min", "epsilon_max", "similarity_low", '
    '"similarity_high", '
    '"held_out", "round_size", "every", "l2", "near_duplicate_threshold", "uncertainty_weight", '
    '"novelty_weight", "embedding_model"}: `real-align simulate`\'s options, with its defaults '
    "(docs/simulation.md). Only `budgets` is required."
)
DATA_HELP = (
    "The input: JSON Lines of one format, scored responses (format 1) or pairwise chosen/rejected "
    "(format 2), optionally gzip-compressed; a bad line is refused with its number."
)


def _read(simulation: Simulation) -> SimulationRead:
    base = f"/v1/simulations/{simulation.id}/files"
    return SimulationRead(
        id=simulation.id,
        status=SimulationStatus(simulation.status),
        phase=SimulationPhase(simulation.phase) if simulation.phase else None,
        done=simulation.done,
        total=simulation.total,
        parameters=simulation.parameters,
        embedding_model=simulation.embedding_model,
        input=SimulationInputRead(
            name=simulation.input_name,
            sha256=simulation.input_sha256,
            bytes=simulation.input_bytes,
            format=simulation.input_format,
            prompts=simulation.prompts,
            responses=simulation.responses,
        ),
        created_by=simulation.created_by,
        attempts=simulation.attempts,
        error=simulation.error,
        files=[SimulationFile(**entry, url=f"{base}/{entry['name']}") for entry in simulation.files or []],
        created_at=simulation.created_at,
        started_at=simulation.started_at,
        heartbeat_at=simulation.heartbeat_at,
        finished_at=simulation.finished_at,
    )


@router.post(
    "/simulations",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SimulationRead,
    responses=problems(413),
)
def create_simulation(
    response: Response,
    session: SessionDep,
    caller: DataTeamDep,
    parameters: Annotated[str, Form(description=PARAMETERS_HELP)],
    data: Annotated[UploadFile, File(description=DATA_HELP)],
) -> SimulationRead:
    """Queue a budget simulation (issue 12) on an uploaded input: the job runs `real-align simulate`'s steps
    in a worker; follow it at the `Location`, then download its report files."""
    try:
        checked = SimulationParameters.model_validate_json(parameters)
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", "parameters", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None
    simulation = service.create(session, caller, checked, data.file.read(), data.filename)
    response.headers["Location"] = f"/v1/simulations/{simulation.id}"
    return _read(simulation)


@router.get("/simulations", response_model=Page[SimulationRead], responses=problems())
def list_simulations(
    session: SessionDep, caller: DataTeamDep, limit: LimitQuery = 50, cursor: CursorQuery = None
) -> Page[SimulationRead]:
    """The caller's simulations (an admin's: everyone's), newest first."""
    return service.list_visible(session, caller, limit=limit, cursor=cursor).page(_read)


@router.get("/simulations/{simulation_id}", response_model=SimulationRead, responses=problems(404))
def get_simulation(simulation_id: uuid.UUID, session: SessionDep, caller: DataTeamDep) -> SimulationRead:
    """Status and progress (`phase`, `done` of `total`), the parameters, and the report files once done."""
    return _read(service.get(session, caller, simulation_id))


@router.get(
    "/simulations/{simulation_id}/files/{file_name}",
    response_class=Response,
    responses={
        200: {"content": _FILE_TYPES, "description": "A report file (Markdown, JSON or PNG)"},
        **problems(404, 409),
    },
)
def download_simulation_file(
    simulation_id: uuid.UUID,
    file_name: Annotated[NoNulStr, Path(max_length=200)],
    session: SessionDep,
    caller: DataTeamDep,
) -> Response:
    """One report file: simulation.md, simulation.json, and accuracy.png, label_error.png and
    labels_needed.png where the worker has matplotlib. 409 until the simulation succeeded."""
    simulation = service.get(session, caller, simulation_id)
    entry = service.file_of(simulation, file_name)
    local = storage.local_path(simulation.location, file_name)
    if local is not None:
        return FileResponse(
            local, media_type=entry["media_type"], filename=file_name, content_disposition_type="inline"
        )
    return StreamingResponse(
        storage.iter_bytes(simulation.location, file_name),
        media_type=entry["media_type"],
        headers={"Content-Length": str(entry["bytes"])},
    )
