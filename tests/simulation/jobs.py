"""Simulation jobs for tests that need one to exist (the auth matrix, the fuzzer) without running it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from app.auth.context import Caller
from app.auth.models import Principal, Role
from app.simulation import service
from app.simulation.schemas import SimulationParameters

# Three pairwise records: enough for a full budget of 1 label (one held out, two to label).
TINY_INPUT = b"".join(
    json.dumps({"prompt": f"q{n}", "chosen": f"good {n}", "rejected": f"bad {n}"}).encode() + b"\n"
    for n in range(3)
)
TINY_PARAMETERS = {"budgets": [1], "strategies": ["random"], "repeats": 1, "every": 1}
REPORT = b"# Budget simulation: tiny.jsonl\n"


def caller_of(principal: Principal) -> Caller:
    """The caller a key of this principal authenticates as."""
    return Caller(name=principal.name, role=Role(principal.role), principal_id=principal.id)


def finished_simulation(session: Session, owner: Principal, folder: Path) -> uuid.UUID:
    """A simulation of ``owner``'s, marked succeeded with a one-file report (nothing is simulated)."""
    parameters = SimulationParameters.model_validate(TINY_PARAMETERS)
    simulation = service.create(session, caller_of(owner), parameters, TINY_INPUT, "tiny.jsonl")
    session.flush()
    attempt = service.take(session, simulation.id)
    assert attempt == 1
    report = folder / "simulation.md"
    report.write_bytes(REPORT)
    service.finish(session, simulation.id, attempt, [service.publish(simulation.location, report)])
    return simulation.id
