"""Demo data for the embedded default: a slice of AlpacaEval (CC BY-NC 4.0; see data/demo/NOTICE.md)."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from app.auth.context import BOOTSTRAP_ADMIN
from app.db.session import get_database
from app.projects import service as projects
from app.projects.models import Project
from app.projects.schemas import ProjectCreate
from app.prompts import service as prompts
from app.prompts.schemas import IngestRequest, PromptItem

DEMO_FILE = Path(__file__).resolve().parent.parent / "data" / "demo" / "alpaca_eval_demo.jsonl"
DEMO_PROJECT = "AlpacaEval demo"
DEMO_INSTRUCTIONS = (
    "Read the instruction, then both responses. Choose the response that is more helpful, correct and "
    "harmless. Choose tie if they are equally good, both_bad if neither is acceptable."
)


def load_items(path: Path = DEMO_FILE) -> list[PromptItem]:
    """The demo prompts, validated like any ingest."""
    if not path.exists():
        raise FileNotFoundError(
            f"demo data not found at {path}; it ships in the source checkout only (non-commercial licence)"
        )
    with path.open(encoding="utf-8") as handle:
        return [PromptItem.model_validate(json.loads(line)) for line in handle if line.strip()]


def seed_demo(path: Path = DEMO_FILE) -> tuple[Project, int]:
    """Create the demo project (once) and ingest the demo prompts; returns (project, prompts accepted)."""
    items = load_items(path)
    with get_database().session() as session:
        project = session.scalars(select(Project).where(Project.name == DEMO_PROJECT)).first()
        if project is None:
            project = projects.create(
                session,
                BOOTSTRAP_ADMIN,
                ProjectCreate(name=DEMO_PROJECT, instructions=DEMO_INSTRUCTIONS, budget=len(items)),
            )
        result = prompts.ingest(session, project, IngestRequest(items=items))
    return project, result.accepted
