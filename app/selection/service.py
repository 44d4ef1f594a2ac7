"""Turn embedded prompts into pairs (and their annotation slots), per the project's strategy."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.jobs.service import finish_jobs_if_done
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus, Response
from app.selection.strategies import seed_for, select_batch

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
    """Create pairs for pending prompts whose responses are all embedded; returns prompts finished.

    The prompts of one project are selected together in one batched call (exact per prompt).
    """
    prompts = session.scalars(
        select(Prompt)
        .where(Prompt.id.in_(prompt_ids), Prompt.status == PromptStatus.PENDING)
        .options(selectinload(Prompt.responses))
        .order_by(Prompt.id)
    ).all()
    by_project: dict[uuid.UUID, list[Prompt]] = defaultdict(list)
    for prompt in prompts:
        by_project[prompt.project_id].append(prompt)
    finished = 0
    job_ids: set[uuid.UUID] = set()
    for project_id, project_prompts in by_project.items():
        project = session.get_one(Project, project_id)
        done, jobs = _build_for_project(session, project, project_prompts)
        finished += done
        job_ids |= jobs
    session.flush()
    finish_jobs_if_done(session, job_ids)
    if finished:
        log.info("pairs.built", extra={"prompts": finished})
    return finished


def _build_for_project(
    session: Session, project: Project, prompts: list[Prompt]
) -> tuple[int, set[uuid.UUID]]:
    candidates = {p.id: distinct_candidates(p.responses) for p in prompts}
    stored = embedding_repository.vectors_for(
        session, project.embedding_model, [r.text_sha256 for c in candidates.values() for r in c]
    )
    # A prompt still waiting for a vector stays pending; the task that stores it comes back here.
    ready = [p for p in prompts if all(r.text_sha256 in stored for r in candidates[p.id])]
    if not ready:
        return 0, set()
    width = max(2, max(len(candidates[p.id]) for p in ready))
    dim = max((e.dim for e in stored.values()), default=1)
    vectors = np.zeros((len(ready), width, dim), dtype=np.float32)
    mask = np.zeros((len(ready), width), dtype=bool)
    for row, prompt in enumerate(ready):
        for col, response in enumerate(candidates[prompt.id]):
            embedding = stored[response.text_sha256]
            vectors[row, col] = from_bytes(embedding.vector, embedding.dim)
            mask[row, col] = True
    seeds = [seed_for(project.id, p.id) for p in ready]
    selection = select_batch(
        vectors, mask, project.strategy, project.pairs_per_prompt, seeds, project.near_duplicate_threshold
    )
    finished = 0
    job_ids: set[uuid.UUID] = set()
    for row, prompt in enumerate(ready):
        choices = selection.choices(row)
        status = PromptStatus.PAIRED if choices else PromptStatus.UNPAIRABLE
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
        for rank, choice in enumerate(choices):
            first, second = candidates[prompt.id][choice.i].id, candidates[prompt.id][choice.j].id
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
    return finished, job_ids
