"""Turn embedded prompts into pairs (and their annotation slots), per the project's strategy."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app.active import service as active
from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.embeddings.models import Embedding
from app.jobs.service import finish_jobs_if_done
from app.pairs.models import Pair, PairSlot, PairStatus
from app.projects.models import Project, Strategy
from app.prompts.models import Prompt, PromptStatus, Response
from app.selection.strategies import (
    BatchSelection,
    PairChoice,
    near_duplicate_of,
    seed_for,
    select_batch,
    similarities,
)

log = logging.getLogger(__name__)


CollapseReason = Literal["empty", "exact_duplicate", "near_duplicate"]


@dataclass(frozen=True)
class CollapsedResponse:
    """A response left out before pairing, and why: "empty", "exact_duplicate" or "near_duplicate" (of
    ``duplicate_of``, an earlier response that was kept)."""

    response: Response
    reason: CollapseReason
    duplicate_of: Response | None


def _collapse_exact(responses: Sequence[Response]) -> tuple[list[Response], list[CollapsedResponse]]:
    """(candidates, collapsed): empty responses and exact-duplicate texts out (the first by position kept)."""
    first: dict[str, Response] = {}
    candidates: list[Response] = []
    collapsed: list[CollapsedResponse] = []
    for response in sorted(responses, key=lambda r: r.position):
        if not response.text.strip():
            collapsed.append(CollapsedResponse(response, "empty", None))
        elif response.text_sha256 in first:
            collapsed.append(CollapsedResponse(response, "exact_duplicate", first[response.text_sha256]))
        else:
            first[response.text_sha256] = response
            candidates.append(response)
    return candidates, collapsed


def distinct_candidates(responses: Sequence[Response]) -> list[Response]:
    """Non-empty responses with exact-duplicate texts collapsed (the first by position is kept)."""
    return _collapse_exact(responses)[0]


def collapsed_responses(
    responses: Sequence[Response], stored: Mapping[str, Embedding], threshold: float | None
) -> list[CollapsedResponse]:
    """Every response the selection leaves out, in position order: empty and exact duplicates, and, once
    all candidates are embedded, the near-duplicates ``select_batch`` collapses (the same computation)."""
    candidates, collapsed = _collapse_exact(responses)
    if candidates and all(r.text_sha256 in stored for r in candidates):
        vectors, mask = stack([candidates], stored)
        duplicate_of = near_duplicate_of(similarities(vectors, mask), mask, threshold)[0]
        collapsed += [
            CollapsedResponse(candidates[j], "near_duplicate", candidates[int(of)])
            for j, of in enumerate(duplicate_of)
            if of >= 0
        ]
    return sorted(collapsed, key=lambda c: c.response.position)


def stack(
    prompts_candidates: Sequence[Sequence[Response]], stored: Mapping[str, Embedding]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Padded (P, k, d) vectors and (P, k) mask of each prompt's candidates, for select_batch."""
    width = max(2, max(len(c) for c in prompts_candidates))
    dim = max((e.dim for e in stored.values()), default=1)
    vectors = np.zeros((len(prompts_candidates), width, dim), dtype=np.float32)
    mask = np.zeros((len(prompts_candidates), width), dtype=bool)
    for row, candidates in enumerate(prompts_candidates):
        for col, response in enumerate(candidates):
            embedding = stored[response.text_sha256]
            vectors[row, col] = from_bytes(embedding.vector, embedding.dim)
            mask[row, col] = True
    return vectors, mask


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
    vectors, mask = stack([candidates[p.id] for p in ready], stored)
    selection = select_for(session, project, ready, vectors, mask)
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
        add_pairs(session, project, prompt, candidates[prompt.id], choices)
    return finished, job_ids


def select_for(
    session: Session,
    project: Project,
    prompts: Sequence[Prompt],
    vectors: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_],
) -> BatchSelection:
    """The project's strategy on these prompts' stacked candidates (``active`` asks its reward model)."""
    seeds = [seed_for(project.id, p.id) for p in prompts]
    scores = (
        active.pair_scores(session, project, vectors, mask) if project.strategy == Strategy.ACTIVE else None
    )
    return select_batch(
        vectors,
        mask,
        project.strategy,
        project.pairs_per_prompt,
        seeds,
        project.near_duplicate_threshold,
        pair_scores=scores,
    )


def add_pairs(
    session: Session,
    project: Project,
    prompt: Prompt,
    candidates: Sequence[Response],
    choices: list[PairChoice],
) -> list[Pair]:
    """The chosen pairs of a prompt, queued, each with its project's annotations_per_pair slots."""
    added = []
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
        added.append(pair)
    return added
