"""Redundant pairs: hold back a pair whose two responses both have near-duplicates already labelled.

With ``project.skip_redundant_pairs`` on, a pair that was never handed out (``released_at`` null, queued)
is *redundant* when each of its two responses has a near-duplicate among the responses of the project's
pairs that already have a label (ordinary pairs; gold checks do not count): another response whose text is
identical, or whose text is linked to it in the newest response index's near-duplicate pairs (cosine at or
above the project's ``near_duplicate_threshold``, 0.98 when null, and at least the index file's floor;
each text's 10 nearest texts are considered, as in the neighbour stats). A redundant pair gets status
``redundant``, its slots ``done = true`` (so no claim ever sees them, and no budget is spent on it) and
``redundant_with``: for each response, the labelled pair and response that made it redundant.

The ``neighbors.mark_redundant`` task (``app/neighbors/tasks.py``: ``check_project``, then ``apply_plan``)
makes the stored state match that rule and is idempotent: it marks the queued pairs that qualify and queues
again the redundant pairs that no longer do (a label undone, a higher threshold). It runs after every index
build of such a project, every ``REAL_REDUNDANT_SWEEP_INTERVAL_SECONDS`` (``neighbors.sweep_redundant``,
for labels given since), and after a PATCH that turns the setting on or changes the threshold or model.
Turning the setting off queues every redundant pair again in the PATCH's own transaction (``restore_all``).

A response whose text is not in the newest index yet (embedded after it was built) has no near-duplicates
for this purpose until the next build: a pair is held back late rather than wrongly.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import IndexNotReady
from app.neighbors.index import TextKind
from app.neighbors.service import NearDuplicates, near_duplicates
from app.pairs import repository
from app.pairs.models import PairStatus
from app.pairs.repository import CandidatePair, LabelledResponse
from app.projects.models import Project, ProjectStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedundancyPlan:
    """What the stored state should become: pairs to hold back (with why) and pairs to queue again."""

    mark: dict[uuid.UUID, dict[str, Any]]
    restore: list[uuid.UUID]


def plan_redundancy(
    links: NearDuplicates, labelled: list[LabelledResponse], candidates: list[CandidatePair]
) -> RedundancyPlan:
    """Decide, from an index's near-duplicate links, which never-handed-out pairs are redundant (no DB)."""
    label_of = {sha: label for label, sha in enumerate(links.text_hashes)}
    # Per text, the first two labelled responses (by response id): enough to name one other than any
    # single candidate response, without holding every labelled copy of a common text.
    evidence: dict[int, list[LabelledResponse]] = {}
    for row in sorted(labelled, key=lambda r: (r.response_id, r.pair_id)):
        label = label_of.get(row.text_sha256)
        if label is not None:
            kept = evidence.setdefault(label, [])
            if len(kept) < 2 and all(r.response_id != row.response_id for r in kept):
                kept.append(row)
    neighbours: dict[int, list[tuple[int, float]]] = {}
    for i, j, similarity in zip(
        links.links["i"].tolist(), links.links["j"].tolist(), links.links["similarity"].tolist(), strict=True
    ):
        if i in evidence:
            neighbours.setdefault(j, []).append((i, float(similarity)))
        if j in evidence:
            neighbours.setdefault(i, []).append((j, float(similarity)))

    def nearest_labelled(response_id: uuid.UUID, sha: str) -> dict[str, Any] | None:
        label = label_of.get(sha)
        if label is None:
            return None
        best: tuple[tuple[float, uuid.UUID], LabelledResponse, float] | None = None
        for other, similarity in [(label, 1.0), *neighbours.get(label, [])]:
            for row in evidence.get(other, []):
                if row.response_id == response_id:
                    continue
                key = (-similarity, row.response_id)
                if best is None or key < best[0]:
                    best = (key, row, similarity)
        if best is None:
            return None
        _, row, similarity = best
        return {
            "similar_response_id": str(row.response_id),
            "labelled_pair_id": str(row.pair_id),
            "similarity": round(min(similarity, 1.0), 6),
        }

    mark: dict[uuid.UUID, dict[str, Any]] = {}
    restore: list[uuid.UUID] = []
    for pair in candidates:
        a = nearest_labelled(pair.response_a_id, pair.response_a_sha256)
        b = nearest_labelled(pair.response_b_id, pair.response_b_sha256) if a is not None else None
        redundant = a is not None and b is not None
        if redundant and pair.status == PairStatus.QUEUED:
            mark[pair.pair_id] = {
                "threshold": links.threshold,
                "index_version": links.info.version,
                "response_a": a,
                "response_b": b,
            }
        elif not redundant and pair.status == PairStatus.REDUNDANT:
            restore.append(pair.pair_id)
    return RedundancyPlan(mark, restore)


def restore_all(session: Session, project: Project) -> int:
    """Queue every redundant pair of the project again (slots reopened); returns how many."""
    repository.lock_redundancy(session, project.id)
    restored = repository.restore_redundant(session, repository.redundant_pair_ids(session, project.id))
    if restored:
        log.info("pairs.redundant_restored", extra={"project_id": str(project.id), "pairs": len(restored)})
    return len(restored)


@dataclass(frozen=True)
class RedundancyCheck:
    """What a check of a project found: the plan to write next (None: nothing to write) and how many pairs
    were queued again in the check's own unit of work (the project no longer skips redundant pairs)."""

    plan: RedundancyPlan | None
    restored: int = 0


def check_project(session: Session, project_id: uuid.UUID) -> RedundancyCheck:
    """Read what the project's redundant pairs should be (no locks held); restores at once if it no longer
    skips them."""
    project = session.get(Project, project_id)
    if project is None:
        return RedundancyCheck(None)
    if not project.skip_redundant_pairs:
        return RedundancyCheck(None, restore_all(session, project))
    try:
        links = near_duplicates(session, project, TextKind.RESPONSES)
    except IndexNotReady:
        # A build was requested; it asks for this task again when it is done.
        log.info("pairs.redundancy_deferred", extra={"project_id": str(project_id)})
        return RedundancyCheck(None)
    plan = plan_redundancy(
        links,
        repository.labelled_responses(session, project_id),
        repository.candidate_pairs(session, project_id),
    )
    return RedundancyCheck(plan if plan.mark or plan.restore else None)


def apply_plan(session: Session, project_id: uuid.UUID, plan: RedundancyPlan) -> dict[str, int]:
    """Write a plan made by check_project (a short transaction, after the reads); pairs marked, restored."""
    repository.lock_redundancy(session, project_id)
    # Read after the lock: a PATCH that turned the setting off has committed its restore by now.
    if not session.scalar(select(Project.skip_redundant_pairs).where(Project.id == project_id)):
        return {"marked": 0, "restored": 0}
    marked = repository.mark_redundant(session, plan.mark)
    restored = repository.restore_redundant(session, plan.restore)
    if marked or restored:
        log.info(
            "pairs.redundancy_marked",
            extra={"project_id": str(project_id), "marked": len(marked), "restored": len(restored)},
        )
    return {"marked": len(marked), "restored": len(restored)}


def projects_skipping_redundant(session: Session) -> list[uuid.UUID]:
    """Active projects that hold back redundant pairs."""
    return list(
        session.scalars(
            select(Project.id)
            .where(Project.skip_redundant_pairs.is_(True), Project.status == ProjectStatus.ACTIVE)
            .order_by(Project.id)
        )
    )
