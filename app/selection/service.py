"""Turn embedded prompts into pairs (and their annotation slots), per the project's strategy."""

from __future__ import annotations

import logging
import uuid

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.jobs.service import finish_jobs_if_done
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response
from app.selection.strategies import seed_for, select_pairs

log = logging.getLogger(__name__)


def distinct_candidates(responses: list[Response]) -> list[Response]:
    """Non-empty responses with exact-duplicate texts collapsed (the first by position is kept)."""
    seen: set[str] = set()
    out: list[Response] = []
    for response in sorted(responses, key=lambda r: r.position):
        if not response.text.strip() or response.text_sha256 in seen:
            continue
        seen.add(response.text_sha256)
        out.append(response)
    return out


def build_pairs(session: Session, prompt_ids: list[uuid.UUID]) -> int:
    """Create pairs for pending prompts whose responses are all embedded; returns prompts finished."""
    prompts = session.scalars(
        select(Prompt)
        .where(Prompt.id.in_(prompt_ids), Prompt.status == PromptStatus.PENDING)
        .options(selectinload(Prompt.responses))
        .order_by(Prompt.id)
    ).all()
    projects: dict[uuid.UUID, Project] = {}
    finished = 0
    job_ids: set[uuid.UUID] = set()
    for prompt in prompts:
        project = projects.get(prompt.project_id) or session.get_one(Project, prompt.project_id)
        projects[project.id] = project
        candidates = distinct_candidates(prompt.responses)
        stored = embedding_repository.vectors_for(
            session, project.embedding_model, [r.text_sha256 for r in candidates]
        )
        if any(r.text_sha256 not in stored for r in candidates):
            continue  # still waiting for a vector; the task that stores it comes back here
        status = PromptStatus.PAIRED if len(candidates) >= 2 else PromptStatus.UNPAIRABLE
        # The conditional update is the guard against two tasks pairing one prompt.
        claimed = session.execute(
            update(Prompt)
            .where(Prompt.id == prompt.id, Prompt.status == PromptStatus.PENDING)
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        finished += 1
        if prompt.job_id:
            job_ids.add(prompt.job_id)
        if status is PromptStatus.UNPAIRABLE:
            continue
        vectors = np.stack(
            [from_bytes(stored[r.text_sha256].vector, stored[r.text_sha256].dim) for r in candidates]
        )
        choices = select_pairs(
            vectors, project.strategy, project.pairs_per_prompt, seed=seed_for(project.id, prompt.id)
        )
        for rank, choice in enumerate(choices):
            first, second = candidates[choice.i].id, candidates[choice.j].id
            a_id, b_id = (first, second) if first < second else (second, first)
            pair = Pair(
                project_id=project.id,
                prompt_id=prompt.id,
                response_a_id=a_id,
                response_b_id=b_id,
                strategy=project.strategy,
                rank=rank,
                similarity=choice.similarity,
                priority=choice.priority,
                status=PairStatus.QUEUED,
            )
            session.add(pair)
            session.flush()
            session.add_all(
                PairSlot(project_id=project.id, pair_id=pair.id, slot=slot, priority=choice.priority)
                for slot in range(project.annotations_per_pair)
            )
    session.flush()
    finish_jobs_if_done(session, job_ids)
    if finished:
        log.info("pairs.built", extra={"prompts": finished})
    return finished
