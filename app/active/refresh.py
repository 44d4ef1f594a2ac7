"""After each reward-model refit, the `active` project's unreleased pairs are chosen again, in batches.

A batch takes up to REFRESH_BATCH_PROMPTS paired prompts (in id order, after a cursor) whose pairs were never
handed out, locks their slots with SKIP LOCKED (the claim's own lock order: slots first), and runs selection
on them with the new model (app/selection/service.select_for). A prompt keeps its pairs with their new
priorities when the choice is the same, and gets the new pairs otherwise (a prompt with more than two
candidates may be re-paired). A prompt a claim is leasing right now is skipped, never waited for: claims
never wait on a refresh.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, selectinload

from app.embeddings import repository as embedding_repository
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus
from app.selection.service import add_pairs, distinct_candidates, select_for, stack

log = logging.getLogger(__name__)

REFRESH_TASK = "active.refresh_priorities"
REFRESH_BATCH_PROMPTS = 200


def _free_prompts(session: Session, prompt_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of these prompts, those whose every slot this transaction could lock (SKIP LOCKED) and none of whose
    pairs was ever handed out, leased or labelled."""
    total: dict[uuid.UUID, int] = defaultdict(int)
    for prompt_id, _ in session.execute(
        select(Pair.prompt_id, PairSlot.id)
        .join(Pair, Pair.id == PairSlot.pair_id)
        .where(Pair.prompt_id.in_(prompt_ids))
    ):
        total[prompt_id] += 1
    locked: dict[uuid.UUID, int] = defaultdict(int)
    touched: set[uuid.UUID] = set()
    rows = session.execute(
        select(
            Pair.prompt_id,
            Pair.released_at,
            Pair.labels_count,
            PairSlot.released,
            PairSlot.lease_assignment_id,
        )
        .join(Pair, Pair.id == PairSlot.pair_id)
        .where(Pair.prompt_id.in_(prompt_ids))
        .with_for_update(of=PairSlot, skip_locked=True)
    )
    for prompt_id, released_at, labels, slot_released, lease in rows:
        locked[prompt_id] += 1
        if released_at is not None or labels or slot_released or lease is not None:
            touched.add(prompt_id)
    return {p for p in prompt_ids if total[p] and locked[p] == total[p] and p not in touched}


def refresh_batch(
    session: Session, project: Project, after: uuid.UUID | None, limit: int = REFRESH_BATCH_PROMPTS
) -> tuple[int, uuid.UUID | None]:
    """Choose again the pairs of the next ``limit`` untouched paired prompts after ``after``: (how many
    prompts got other pairs, the cursor for the next batch or None when this was the last)."""
    query = (
        select(Prompt)
        .where(Prompt.project_id == project.id, Prompt.status == PromptStatus.PAIRED)
        .options(selectinload(Prompt.responses))
        .order_by(Prompt.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(Prompt.id > after)
    prompts = list(session.scalars(query))
    if not prompts:
        return 0, None
    cursor = prompts[-1].id if len(prompts) == limit else None
    free = _free_prompts(session, [p.id for p in prompts])
    candidates = {p.id: distinct_candidates(p.responses) for p in prompts if p.id in free}
    stored = embedding_repository.vectors_for(
        session, project.embedding_model, [r.text_sha256 for c in candidates.values() for r in c]
    )
    ready = [
        p for p in prompts if p.id in candidates and all(r.text_sha256 in stored for r in candidates[p.id])
    ]
    if not ready:
        return 0, cursor
    vectors, mask = stack([candidates[p.id] for p in ready], stored)
    selection = select_for(session, project, ready, vectors, mask)
    existing: dict[uuid.UUID, list[Pair]] = defaultdict(list)
    for pair in session.scalars(
        select(Pair).where(Pair.prompt_id.in_([p.id for p in ready])).order_by(Pair.rank)
    ):
        existing[pair.prompt_id].append(pair)
    repaired = 0
    for row, prompt in enumerate(ready):
        choices = selection.choices(row)
        chosen = [
            tuple(sorted((candidates[prompt.id][c.i].id, candidates[prompt.id][c.j].id))) for c in choices
        ]
        had = existing[prompt.id]
        if chosen == [(p.response_a_id, p.response_b_id) for p in had]:
            for pair, choice in zip(had, choices, strict=True):
                pair.priority = choice.priority
                session.execute(
                    update(PairSlot)
                    .where(PairSlot.pair_id == pair.id)
                    .values(priority=choice.priority)
                    .execution_options(synchronize_session=False)
                )
            continue
        session.execute(
            delete(Pair).where(Pair.id.in_([p.id for p in had])).execution_options(synchronize_session=False)
        )
        for pair in had:
            session.expunge(pair)
        add_pairs(session, project, prompt, candidates[prompt.id], choices)
        repaired += 1
    session.flush()
    log.info(
        "active.priorities_refreshed",
        extra={"project_id": str(project.id), "prompts": len(ready), "repaired": repaired},
    )
    return repaired, cursor
