"""Cross-prompt neighbours: the index-building task, and neighbour and near-duplicate reads.

When an index is rebuilt (``plan_builds``, for the ``neighbors.build_index`` task in
``app/neighbors/tasks.py``): ``embed_prompts`` asks for a build after every chunk it pairs
(``schedule_builds``), and the task decides, so the rule lives in one place:

- no index yet → build now (a first, possibly partial index beats none);
- the project still has prompts waiting for embeddings and the newest index is younger than
  ``REAL_NEIGHBORS_REBUILD_INTERVAL_SECONDS`` → skip: more chunks of the same ingest are on their way, and the
  chunk that drains the project asks again and builds. A 10-chunk ingest builds twice (after the first chunk
  and after the last), not ten times. A prompt stuck pending cannot starve the index: the reconciler re-sends
  its embedding, whose request arrives once the interval has passed;
- the newest index already holds exactly the project's embedded texts (same digest) → skip (redelivery, or
  two workers finishing the last chunks together).

Each build covers two indexes (``TextKind``): the project's response texts and its prompt texts (a chat
prompt's turns as one text, ``app/prompts/text.py``), each with its own digest, so only the one whose texts
changed gets a new version. After a build (or a skip), a project with ``skip_redundant_pairs`` asks for
``neighbors.mark_redundant`` (``app/neighbors/redundancy.py``).

API processes and workers only read index files (``index.load_newest``); nothing but this task writes them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import comb
from pathlib import Path
from typing import TypedDict

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from app import background
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.errors import IndexNotReady, NotFound
from app.neighbors import repository
from app.neighbors.index import (
    DUPS_DTYPE,
    IndexKind,
    TextKind,
    VectorIndex,
    build_in_progress,
    building,
    hashes_digest,
    index_folder,
    load_newest,
    near_duplicate_pairs,
    newest_manifest,
    write_version,
)
from app.neighbors.schemas import (
    IndexInfo,
    IndexSource,
    NeighborResponse,
    NeighborsRead,
    NeighborStats,
    PromptGroup,
    PromptRef,
)
from app.projects.models import Project

log = logging.getLogger(__name__)

DEFAULT_NEAR_DUPLICATE_THRESHOLD = 0.98
# Build-time near-duplicate pairs are kept down to this similarity, so a project may lower its threshold
# to here without a rebuild; below it, stats are answered at this floor (the response says which).
NEAR_DUPLICATE_FLOOR = 0.9
NEAR_DUPLICATES_PER_TEXT = 10
TEXT_PREVIEW_CHARS = 500
# A build marker older than this is a crashed build, not one in progress.
BUILD_MARK_MAX_AGE_SECONDS = 900.0
# Near-duplicate prompt groups listed in stats, and prompts listed per group.
MAX_PROMPT_GROUPS = 20
MAX_PROMPTS_PER_GROUP = 10


def near_duplicate_threshold(project: Project) -> float:
    """The project's near-duplicate cosine threshold, 0.98 when it has none."""
    # Null means "collapse exact duplicates only" within a prompt; a cross-project count still needs one.
    value = getattr(project, "near_duplicate_threshold", None)
    return DEFAULT_NEAR_DUPLICATE_THRESHOLD if value is None else float(value)


def folder_for(project: Project, kind: TextKind = TextKind.RESPONSES) -> Path:
    """The folder of this project's index versions (of response or prompt texts) for its current model."""
    return index_folder(get_settings().index_dir, project.id, project.embedding_model, kind)


def schedule_builds(session: Session, prompt_ids: Sequence[uuid.UUID]) -> None:
    """Ask, after commit, for an index build of every project these prompts belong to (the task debounces)."""
    for project_id in repository.projects_of_prompts(session, list(prompt_ids)):
        send_after_commit(session, "neighbors.build_index", project_id=str(project_id))


@dataclass
class BuildPlan:
    """One index to build: its kind, folder, text hashes and their vectors."""

    kind: TextKind
    folder: Path
    hashes: list[str]
    vectors: npt.NDArray[np.float32]


@dataclass
class ProjectBuilds:
    """What ``neighbors.build_index`` builds for a project (nothing when its indexes are current)."""

    project_id: uuid.UUID
    model: str
    threshold: float
    mark_redundant: bool
    plans: list[BuildPlan]


def plan_builds(session: Session, project_id: uuid.UUID, *, force: bool = False) -> ProjectBuilds | None:
    """The indexes to build for a project and their vectors, or None when the module's debounce rule says
    skip (or the project is gone)."""
    settings = get_settings()
    project = session.get(Project, project_id)
    if project is None:
        return None
    # The response index's age decides the debounce for both kinds (they are built together).
    newest = newest_manifest(folder_for(project))
    if not force and newest is not None and repository.has_pending_prompts(session, project_id):
        age = (datetime.now(UTC) - newest.created_at).total_seconds()
        if age < settings.neighbors_rebuild_interval_seconds:
            log.info(
                "neighbors.build_deferred", extra={"project_id": str(project_id), "age_s": round(age, 1)}
            )
            return None
    builds = ProjectBuilds(
        project_id=project_id,
        model=project.embedding_model,
        threshold=near_duplicate_threshold(project),
        mark_redundant=project.skip_redundant_pairs,
        plans=[],
    )
    for kind in TextKind:
        folder = folder_for(project, kind)
        hashes = repository.embedded_hashes(session, project, kind)
        current = newest_manifest(folder)
        if not hashes:
            continue
        if not force and current is not None and current.digest == hashes_digest(hashes):
            log.info(
                "neighbors.build_skipped",
                extra={"project_id": str(project_id), "texts": kind.value, "version": current.version},
            )
            continue
        vectors = repository.vector_matrix(session, builds.model, hashes)
        builds.plans.append(BuildPlan(kind, folder, hashes, vectors))
    return builds


def build_one(plan: BuildPlan, *, project_id: uuid.UUID, model: str, threshold: float) -> None:
    """Build one index and publish it as a new version (no database: seconds of compute)."""
    settings = get_settings()
    started = datetime.now(UTC)
    with building(plan.folder):
        index = VectorIndex.build(
            plan.vectors,
            hnsw_threshold=settings.neighbors_hnsw_threshold,
            ef_search=settings.neighbors_ef_search,
        )
        floor = min(NEAR_DUPLICATE_FLOOR, threshold)
        dups = near_duplicate_pairs(index, floor=floor, per_text=NEAR_DUPLICATES_PER_TEXT)
        manifest = write_version(
            plan.folder,
            index,
            model=model,
            text_hashes=plan.hashes,
            dups=dups,
            dups_floor=floor,
            ef_search=settings.neighbors_ef_search,
            keep=settings.neighbors_keep_versions,
        )
    log.info(
        "neighbors.index_built",
        extra={
            "project_id": str(project_id),
            "texts": plan.kind.value,
            "version": manifest.version,
            "kind": manifest.kind.value,
            "count": manifest.count,
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 2),
        },
    )


@dataclass
class _Searchable:
    index: VectorIndex
    text_hashes: list[str]
    info: IndexInfo
    dups: npt.NDArray[np.void] | None  # build-time near-duplicate pairs (None: compute now)
    dups_floor: float


def _searchable(session: Session, project: Project, kind: TextKind = TextKind.RESPONSES) -> _Searchable:
    """The newest index file, else an exact index built in memory for a small project, else 409."""
    settings = get_settings()
    folder = folder_for(project, kind)
    stored = load_newest(folder)
    if stored is not None:
        manifest = stored.manifest
        info = IndexInfo(
            source=IndexSource.FILE,
            version=manifest.version,
            kind=manifest.kind,
            indexed_texts=manifest.count,
            created_at=manifest.created_at,
        )
        return _Searchable(stored.index, manifest.text_hashes, info, stored.dups, manifest.dups_floor)
    count = repository.count_embedded_texts(session, project, kind)
    if count > settings.neighbors_on_the_fly_max_vectors:
        # Projects ingested before indexes existed, or a lost task: ask for a build and let the client retry
        # (once: a client polling during a long build must not queue a build per poll).
        if not build_in_progress(folder, BUILD_MARK_MAX_AGE_SECONDS):
            background.dispatch("neighbors.build_index", {"project_id": str(project.id)})
        raise IndexNotReady(
            f"no neighbour index of {kind.value} yet for this project's {count} vectors; a build was "
            "requested, retry later",
            headers={"Retry-After": "60"},
        )
    hashes = repository.embedded_hashes(session, project, kind)
    vectors = repository.vector_matrix(session, project.embedding_model, hashes)
    index = (
        VectorIndex(IndexKind.EXACT, 0, 0, matrix=np.empty((0, 0), np.float32))
        if not hashes
        else VectorIndex.build(
            vectors, hnsw_threshold=len(hashes) + 1, ef_search=settings.neighbors_ef_search
        )
    )
    info = IndexInfo(
        source=IndexSource.ON_THE_FLY,
        version=None,
        kind=IndexKind.EXACT,
        indexed_texts=len(hashes),
        created_at=None,
    )
    return _Searchable(index, hashes, info, None, 0.0)


def _shown(row: repository.ResponseRow, similarity: float) -> NeighborResponse:
    return NeighborResponse(
        response_id=row.response_id,
        prompt_id=row.prompt_id,
        prompt_external_id=row.prompt_external_id,
        similarity=round(similarity, 6),
        text=row.text[:TEXT_PREVIEW_CHARS],
        text_truncated=len(row.text) > TEXT_PREVIEW_CHARS,
    )


def neighbors(session: Session, project: Project, response_id: uuid.UUID, k: int) -> NeighborsRead:
    """The k nearest other responses by cosine, plus the responses with the identical text."""
    target = repository.response_in_project(session, project.id, response_id)
    if target is None:
        raise NotFound(f"no response {response_id}")
    vector = repository.vector_for(session, project.embedding_model, target.text_sha256)
    if vector is None:
        raise IndexNotReady(
            "this response has no embedding yet (or is empty); retry once its prompt is embedded",
            headers={"Retry-After": "30"},
        )
    searchable = _searchable(session, project)
    found: list[NeighborResponse] = []
    # The query vector comes from the database, so a response newer than the index still gets neighbours
    # (among the indexed texts). One text may stand for several responses, or (after a prompt was deleted)
    # none: widen the search until k responses are found or the index is exhausted.
    fetch = min(k + 1, searchable.index.count)
    while fetch > 0:
        labels, sims = searchable.index.search(vector, fetch)
        ranked = [
            (searchable.text_hashes[label], float(sim))
            for label, sim in zip(labels[0].tolist(), sims[0].tolist(), strict=True)
            if searchable.text_hashes[label] != target.text_sha256
        ]
        by_text = repository.responses_with_texts(session, project.id, [sha for sha, _ in ranked])
        found = [_shown(row, sim) for sha, sim in ranked for row in by_text.get(sha, [])]
        if len(found) >= k or fetch >= searchable.index.count:
            break
        fetch = min(fetch * 2, searchable.index.count)
    same_text = repository.responses_with_texts(session, project.id, [target.text_sha256])
    duplicates = [
        _shown(row, 1.0) for row in same_text.get(target.text_sha256, []) if row.response_id != response_id
    ]
    return NeighborsRead(
        response_id=target.response_id,
        prompt_id=target.prompt_id,
        k=k,
        index=searchable.info,
        exact_duplicates=duplicates,
        neighbors=found[:k],
    )


@dataclass
class NearDuplicates:
    """Near-duplicate links between the indexed texts of one kind, at or above a threshold."""

    info: IndexInfo
    text_hashes: list[str]
    threshold: float
    links: npt.NDArray[np.void]  # DUPS_DTYPE rows (i, j, similarity), labels into text_hashes, i < j


def _links(searchable: _Searchable, threshold: float) -> NearDuplicates:
    dups = searchable.dups
    if dups is None:
        dups = near_duplicate_pairs(searchable.index, floor=threshold, per_text=NEAR_DUPLICATES_PER_TEXT)
    dups = np.asarray(dups, DUPS_DTYPE)
    return NearDuplicates(
        searchable.info, searchable.text_hashes, threshold, dups[dups["similarity"] >= threshold]
    )


def near_duplicates(session: Session, project: Project, kind: TextKind) -> NearDuplicates:
    """The newest index's near-duplicate links at the project's threshold (at least the file's floor)."""
    searchable = _searchable(session, project, kind)
    return _links(searchable, max(near_duplicate_threshold(project), searchable.dups_floor))


def stats(session: Session, project: Project) -> NeighborStats:
    """Near-duplicate and exact-duplicate counts across the project's responses and prompts."""
    responses = _searchable(session, project, TextKind.RESPONSES)
    prompts = _searchable(session, project, TextKind.PROMPTS)
    threshold = max(near_duplicate_threshold(project), responses.dups_floor, prompts.dups_floor)
    response_links = _links(responses, threshold)
    per_text = repository.responses_per_text(session, project.id)
    counts = [per_text.get(sha, 0) for sha in response_links.text_hashes]
    text_pairs = _label_pairs(response_links)
    involved = {label for pair in text_pairs for label in pair}
    prompt_links = _links(prompts, threshold)
    prompt_figures = _prompt_figures(session, project, prompt_links)
    return NeighborStats(
        index=responses.info,
        embedded_texts=repository.count_embedded_texts(session, project),
        threshold=threshold,
        near_duplicate_text_pairs=len(text_pairs),
        near_duplicate_response_pairs=sum(counts[i] * counts[j] for i, j in text_pairs),
        responses_with_near_duplicates=sum(counts[label] for label in involved),
        exact_duplicate_response_pairs=sum(comb(n, 2) for n in per_text.values()),
        responses_with_exact_duplicates=sum(n for n in per_text.values() if n > 1),
        prompt_index=prompts.info,
        embedded_prompt_texts=repository.count_embedded_texts(session, project, TextKind.PROMPTS),
        **prompt_figures,
    )


def _label_pairs(links: NearDuplicates) -> list[tuple[int, int]]:
    return [
        (int(i), int(j)) for i, j in zip(links.links["i"].tolist(), links.links["j"].tolist(), strict=True)
    ]


class _PromptFigures(TypedDict):
    prompts_with_near_duplicates: int
    near_duplicate_prompt_pairs: int
    exact_duplicate_prompt_pairs: int
    prompt_group_count: int
    prompt_groups: list[PromptGroup]


def _prompt_figures(session: Session, project: Project, links: NearDuplicates) -> _PromptFigures:
    """Prompts with near-duplicates, prompt pairs, and the largest groups joined by near-duplicate links.

    Identical prompt texts share one indexed text, so they are near-duplicates of each other (cosine 1).
    """
    per_text = repository.prompts_per_text(session, project.id)
    counts = [per_text.get(sha, 0) for sha in links.text_hashes]
    text_pairs = _label_pairs(links)
    # Groups: connected components over the links, among texts that stand for at least one prompt.
    parent = list(range(len(counts)))

    def find(label: int) -> int:
        while parent[label] != label:
            parent[label] = parent[parent[label]]
            label = parent[label]
        return label

    weakest: dict[int, float] = {}
    for (i, j), similarity in zip(text_pairs, links.links["similarity"].tolist(), strict=True):
        if counts[i] and counts[j]:
            ri, rj = find(i), find(j)
            low = min(weakest.get(ri, 1.0), weakest.get(rj, 1.0), float(similarity))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
            weakest[min(ri, rj)] = low
    members: dict[int, list[int]] = {}
    for label, count in enumerate(counts):
        if count:
            members.setdefault(find(label), []).append(label)
    groups = [
        (root, labels) for root, labels in members.items() if sum(counts[label] for label in labels) > 1
    ]
    groups.sort(key=lambda g: (-sum(counts[label] for label in g[1]), g[0]))
    shown = groups[:MAX_PROMPT_GROUPS]
    refs = repository.prompts_with_texts(
        session, project.id, [links.text_hashes[label] for _, labels in shown for label in labels]
    )
    listed: list[PromptGroup] = []
    for root, labels in shown:
        group = sorted(
            (ref for label in labels for ref in refs.get(links.text_hashes[label], [])),
            key=lambda ref: (ref.external_id, ref.prompt_id),
        )
        listed.append(
            PromptGroup(
                size=sum(counts[label] for label in labels),
                min_similarity=round(weakest.get(root, 1.0), 6),
                prompts=[
                    PromptRef(prompt_id=ref.prompt_id, external_id=ref.external_id)
                    for ref in group[:MAX_PROMPTS_PER_GROUP]
                ],
            )
        )
    return {
        "prompts_with_near_duplicates": sum(sum(counts[label] for label in labels) for _, labels in groups),
        "near_duplicate_prompt_pairs": sum(comb(n, 2) for n in counts)
        + sum(counts[i] * counts[j] for i, j in text_pairs),
        "exact_duplicate_prompt_pairs": sum(comb(n, 2) for n in counts),
        "prompt_group_count": len(groups),
        "prompt_groups": listed,
    }
