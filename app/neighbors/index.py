"""Cosine nearest-neighbour indexes over stored vectors: exact numpy or hnswlib, in versioned files.

Labels are positions in the manifest's ordered ``text_hashes``: one label per distinct text, so responses
sharing a text share a label (the service maps labels back to responses).

Files, per project and model, under ``{index_dir}/{project_id}/{model-slug}/`` for response texts and
``{index_dir}/{project_id}/{model-slug}/prompts/`` for prompt texts (two independent version series):

- ``v{N}.npy`` (exact: the L2-normalised float32 matrix) or ``v{N}.bin`` (hnswlib's own format);
- ``v{N}.dups.npy``: near-duplicate label pairs found at build time (see ``near_duplicate_pairs``);
- ``v{N}.json``: the manifest, written last. A version exists only once its manifest does, and every file is
  written under a temporary name and renamed into place, so a reader never sees a half-written file.

Readers load the newest complete version read-only and cache it per process (``load_newest``); only the
``neighbors.build_index`` task writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
# Rows of queries per matmul in the exact path: bounds the (rows × count) similarity block in memory.
EXACT_QUERY_BATCH = 256
DUPS_DTYPE = np.dtype([("i", "<i4"), ("j", "<i4"), ("similarity", "<f4")])
_MANIFEST = re.compile(r"^v(\d+)\.json$")


class IndexKind(StrEnum):
    EXACT = "exact"
    HNSW = "hnsw"


class TextKind(StrEnum):
    """Which texts an index holds: a project has one index of response texts and one of prompt texts."""

    RESPONSES = "responses"
    PROMPTS = "prompts"


def normalise(vectors: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    matrix = np.ascontiguousarray(np.atleast_2d(np.asarray(vectors, dtype=np.float32)))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float32] = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def _top_k(
    similarities: npt.NDArray[np.float32], k: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Per row, the k highest columns, best first; ties go to the lower label (deterministic)."""
    n = similarities.shape[1]
    if k < n:
        candidates = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    else:
        candidates = np.broadcast_to(np.arange(n), similarities.shape).copy()
    picked = np.take_along_axis(similarities, candidates, axis=1)
    order = np.lexsort((candidates, -picked), axis=1)
    labels = np.take_along_axis(candidates, order, axis=1).astype(np.int64)
    return labels, np.take_along_axis(picked, order, axis=1)


@dataclass
class VectorIndex:
    """An in-memory index: exact (normalised matrix) or HNSW; queried by cosine similarity."""

    kind: IndexKind
    dim: int
    count: int
    matrix: npt.NDArray[np.float32] | None = None
    hnsw: Any = None

    @classmethod
    def build(
        cls, vectors: npt.ArrayLike, *, hnsw_threshold: int, ef_search: int, num_threads: int = -1
    ) -> VectorIndex:
        """Exact below hnsw_threshold vectors, HNSW (M=16, ef_construction=200) at or above it."""
        matrix = normalise(vectors)
        count, dim = matrix.shape
        if count < hnsw_threshold:
            return cls(IndexKind.EXACT, dim, count, matrix=matrix)
        graph = hnswlib.Index(space="cosine", dim=dim)
        graph.init_index(max_elements=max(count, 1), ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
        graph.add_items(matrix, np.arange(count), num_threads=num_threads)
        graph.set_ef(ef_search)
        return cls(IndexKind.HNSW, dim, count, hnsw=graph)

    def search(
        self, queries: npt.ArrayLike, k: int, *, num_threads: int = 1
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(labels, cosine similarities), best first, k per query (fewer when the index holds fewer)."""
        q = normalise(queries)
        if q.shape[1] != self.dim:
            raise ValueError(f"query has {q.shape[1]} dimensions, the index {self.dim}")
        k = min(k, self.count)
        if k <= 0:
            return np.empty((q.shape[0], 0), np.int64), np.empty((q.shape[0], 0), np.float32)
        if self.kind is IndexKind.EXACT:
            assert self.matrix is not None
            labels, sims = [], []
            for start in range(0, q.shape[0], EXACT_QUERY_BATCH):
                block = q[start : start + EXACT_QUERY_BATCH] @ self.matrix.T
                top_labels, top_sims = _top_k(block, k)
                labels.append(top_labels)
                sims.append(top_sims)
            return np.concatenate(labels), np.concatenate(sims)
        # hnswlib searches with max(ef, k), so k up to the count needs no set_ef (which is not thread-safe).
        found, distances = self.hnsw.knn_query(q, k=k, num_threads=num_threads)
        return found.astype(np.int64), (1.0 - distances).astype(np.float32)

    def vectors(self) -> npt.NDArray[np.float32]:
        """Every indexed (normalised) vector, in label order."""
        if self.kind is IndexKind.EXACT:
            assert self.matrix is not None
            return self.matrix
        return np.asarray(self.hnsw.get_items(np.arange(self.count)), dtype=np.float32)


def near_duplicate_pairs(
    index: VectorIndex, *, floor: float, per_text: int = 10, num_threads: int = -1
) -> npt.NDArray[np.void]:
    """Label pairs (i < j) with cosine ≥ floor among each text's per_text nearest others, each pair once."""
    # Bounded per text so a cluster of many near-identical texts cannot produce a quadratic list.
    if index.count < 2:
        return np.empty(0, DUPS_DTYPE)
    best: dict[tuple[int, int], float] = {}
    vectors = index.vectors()
    for start in range(0, index.count, 4096):
        block = vectors[start : start + 4096]
        labels, sims = index.search(block, per_text + 1, num_threads=num_threads)
        rows, cols = np.nonzero(sims >= floor)
        for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
            i, j = start + row, int(labels[row, col])
            if i == j:
                continue
            key = (i, j) if i < j else (j, i)
            best[key] = max(best.get(key, -1.0), float(sims[row, col]))
    out = np.empty(len(best), DUPS_DTYPE)
    for n, ((i, j), sim) in enumerate(sorted(best.items())):
        out[n] = (i, j, sim)
    return out


def model_slug(model: str) -> str:
    """A folder name for a model name or path: readable, and unique by a hash suffix."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")[:80] or "model"
    return f"{readable}-{hashlib.sha256(model.encode('utf-8')).hexdigest()[:8]}"


def index_folder(
    root: Path, project_id: uuid.UUID | str, model: str, kind: TextKind = TextKind.RESPONSES
) -> Path:
    """Where one project's index versions for one model and kind of text live (prompts: a subfolder)."""
    folder = Path(root) / str(project_id) / model_slug(model)
    return folder / "prompts" if kind is TextKind.PROMPTS else folder


def hashes_digest(text_hashes: list[str]) -> str:
    """A fingerprint of the indexed texts (order included), to tell whether an index is up to date."""
    return hashlib.sha256("\n".join(text_hashes).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """What one index version holds; written last, so its presence means the version is complete."""

    version: int
    kind: IndexKind
    count: int
    dim: int
    created_at: datetime
    model: str
    text_hashes: list[str]
    digest: str
    data_file: str
    data_sha256: str
    dups_file: str
    dups_floor: float
    ef_search: int

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON-able values."""
        return {
            "version": self.version,
            "kind": self.kind.value,
            "count": self.count,
            "dim": self.dim,
            "created_at": self.created_at.isoformat(),
            "model": self.model,
            "digest": self.digest,
            "data_file": self.data_file,
            "data_sha256": self.data_sha256,
            "dups_file": self.dups_file,
            "dups_floor": self.dups_floor,
            "ef_search": self.ef_search,
            "hnsw": {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
            "text_hashes": self.text_hashes,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Manifest:
        """Parse a manifest (KeyError or ValueError when it is not one)."""
        return cls(
            version=int(body["version"]),
            kind=IndexKind(body["kind"]),
            count=int(body["count"]),
            dim=int(body["dim"]),
            created_at=datetime.fromisoformat(body["created_at"]),
            model=str(body["model"]),
            text_hashes=[str(h) for h in body["text_hashes"]],
            digest=str(body["digest"]),
            data_file=str(body["data_file"]),
            data_sha256=str(body["data_sha256"]),
            dups_file=str(body["dups_file"]),
            dups_floor=float(body["dups_floor"]),
            ef_search=int(body["ef_search"]),
        )


@dataclass
class StoredIndex:
    """A loaded version: its manifest, the searchable index and the near-duplicate pairs."""

    manifest: Manifest
    index: VectorIndex
    dups: npt.NDArray[np.void]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _publish(temp: Path, final: Path) -> None:
    """fsync then rename: after the rename the file is complete under its final name."""
    with temp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(temp, final)


def _temp_name(folder: Path, final_name: str) -> Path:
    # A leading dot and a random suffix: never matches v{N}.* and never collides with another builder.
    return folder / f".{final_name}.{uuid.uuid4().hex}.tmp"


def versions(folder: Path) -> list[int]:
    """Complete versions in a folder (those with a manifest), newest first."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted((int(m.group(1)) for n in names if (m := _MANIFEST.match(n))), reverse=True)


def read_manifest(folder: Path, version: int) -> Manifest | None:
    """A version's manifest, or None when it is missing or unreadable."""
    try:
        return Manifest.from_json(json.loads((folder / f"v{version}.json").read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("neighbors.manifest_unreadable", extra={"folder": str(folder), "version": version})
        return None


def newest_manifest(folder: Path) -> Manifest | None:
    """The newest readable manifest in a folder."""
    for version in versions(folder):
        manifest = read_manifest(folder, version)
        if manifest is not None:
            return manifest
    return None


@contextlib.contextmanager
def building(folder: Path) -> Iterator[None]:
    """Mark a build in progress in this folder for its duration (see ``build_in_progress``)."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".building-{uuid.uuid4().hex}"
    marker.touch()
    try:
        yield
    finally:
        marker.unlink(missing_ok=True)


def build_in_progress(folder: Path, max_age_seconds: float) -> bool:
    """True when a build marked itself less than max_age_seconds ago (older marks are crashed builds)."""
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return False
    for entry in entries:
        if entry.name.startswith(".building-"):
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime < max_age_seconds:
                    return True
    return False


def _reserve_version(folder: Path) -> int:
    """Claim the next version number with an exclusive lock file, so two builders never share one."""
    version = (versions(folder) or [0])[0] + 1
    while True:
        try:
            fd = os.open(folder / f"v{version}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            version += 1
            continue
        os.close(fd)
        return version


def write_version(
    folder: Path,
    index: VectorIndex,
    *,
    model: str,
    text_hashes: list[str],
    dups: npt.NDArray[np.void],
    dups_floor: float,
    ef_search: int,
    keep: int = 3,
) -> Manifest:
    """Write a new version (data, near-duplicates, then the manifest last) and prune old versions."""
    if len(text_hashes) != index.count:
        raise ValueError("one text hash per indexed vector is required")
    folder.mkdir(parents=True, exist_ok=True)
    version = _reserve_version(folder)
    lock = folder / f"v{version}.lock"
    try:
        data_name = f"v{version}.{'npy' if index.kind is IndexKind.EXACT else 'bin'}"
        temp = _temp_name(folder, data_name)
        if index.kind is IndexKind.EXACT:
            assert index.matrix is not None
            with temp.open("wb") as fh:
                np.save(fh, index.matrix, allow_pickle=False)
        else:
            index.hnsw.save_index(str(temp))
        data_sha256 = _sha256_file(temp)
        _publish(temp, folder / data_name)
        dups_name = f"v{version}.dups.npy"
        temp = _temp_name(folder, dups_name)
        with temp.open("wb") as fh:
            np.save(fh, np.asarray(dups, DUPS_DTYPE), allow_pickle=False)
        _publish(temp, folder / dups_name)
        manifest = Manifest(
            version=version,
            kind=index.kind,
            count=index.count,
            dim=index.dim,
            created_at=datetime.now(UTC),
            model=model,
            text_hashes=list(text_hashes),
            digest=hashes_digest(list(text_hashes)),
            data_file=data_name,
            data_sha256=data_sha256,
            dups_file=dups_name,
            dups_floor=dups_floor,
            ef_search=ef_search,
        )
        temp = _temp_name(folder, f"v{version}.json")
        temp.write_text(json.dumps(manifest.to_json()), "utf-8")
        _publish(temp, folder / f"v{version}.json")
    finally:
        lock.unlink(missing_ok=True)
    _prune(folder, keep)
    return manifest


def _prune(folder: Path, keep: int) -> None:
    """Delete versions older than the newest `keep` (manifest first, so none is ever seen half-deleted)."""
    for version in versions(folder)[keep:]:
        for suffix in ("json", "npy", "bin", "dups.npy"):
            with contextlib.suppress(FileNotFoundError):
                (folder / f"v{version}.{suffix}").unlink()


def load_version(folder: Path, manifest: Manifest) -> StoredIndex:
    """Load a version's files read-only, checking the data file against the manifest's sha256."""
    data_path = folder / manifest.data_file
    if _sha256_file(data_path) != manifest.data_sha256:
        raise ValueError(f"{data_path} does not match its manifest")
    if manifest.kind is IndexKind.EXACT:
        matrix = np.load(data_path, allow_pickle=False)
        index = VectorIndex(IndexKind.EXACT, manifest.dim, manifest.count, matrix=matrix)
    else:
        graph = hnswlib.Index(space="cosine", dim=manifest.dim)
        graph.load_index(str(data_path), max_elements=manifest.count)
        graph.set_ef(manifest.ef_search)
        index = VectorIndex(IndexKind.HNSW, manifest.dim, manifest.count, hnsw=graph)
    if index.count != len(manifest.text_hashes):
        raise ValueError(f"{data_path} holds {index.count} vectors, its manifest {len(manifest.text_hashes)}")
    dups = np.load(folder / manifest.dups_file, allow_pickle=False)
    return StoredIndex(manifest, index, dups)


# (folder, version) → loaded index: one entry per folder (the newest loaded), least recently used dropped
# past MAX_CACHED_INDEXES, so an API process serving many large projects keeps its memory bounded.
MAX_CACHED_INDEXES = 8
_cache: OrderedDict[tuple[str, int], StoredIndex] = OrderedDict()
_unloadable: set[tuple[str, int]] = set()
_cache_lock = threading.Lock()


def load_newest(folder: Path) -> StoredIndex | None:
    """The newest complete version, from the process cache when already loaded; None when there is none."""
    # A version that fails to load (pruned meanwhile, or corrupt) is skipped for the next older one.
    for version in versions(folder):
        key = (str(folder), version)
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None:
                _cache.move_to_end(key)
                return cached
            if key in _unloadable:
                continue
        manifest = read_manifest(folder, version)
        if manifest is None:
            continue
        try:
            stored = load_version(folder, manifest)
        except FileNotFoundError:
            continue  # pruned between listing and loading: an older version is still there
        except (OSError, ValueError, RuntimeError):
            # Corrupt: remembered, so requests stop re-reading a large broken file until a newer version.
            with _cache_lock:
                _unloadable.add(key)
            log.warning("neighbors.index_unloadable", extra={"folder": str(folder), "version": version})
            continue
        with _cache_lock:
            for old in [k for k in _cache if k[0] == key[0]]:
                del _cache[old]
            _cache[key] = stored
            while len(_cache) > MAX_CACHED_INDEXES:
                _cache.popitem(last=False)
        log.info("neighbors.index_loaded", extra={"folder": str(folder), "version": version})
        return stored
    return None


def clear_cache() -> None:
    """Forget every loaded index (tests)."""
    with _cache_lock:
        _cache.clear()
        _unloadable.clear()
