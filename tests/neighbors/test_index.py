"""The index itself: exact search against brute force, near-duplicate pairs, versioned files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.neighbors import index as index_module
from app.neighbors.index import (
    DUPS_DTYPE,
    IndexKind,
    VectorIndex,
    build_in_progress,
    building,
    load_newest,
    model_slug,
    near_duplicate_pairs,
    newest_manifest,
    versions,
    write_version,
)


def clustered(n: int, dim: int = 32, seed: int = 0) -> npt.NDArray[np.float32]:
    """Vectors around a few centres: structured like embeddings, unlike uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    return (centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)


def hashes(n: int) -> list[str]:
    return [f"{i:064x}" for i in range(n)]


def write(folder: Path, vectors: npt.NDArray[np.float32], **kwargs: object) -> int:
    index = VectorIndex.build(vectors, hnsw_threshold=10_000, ef_search=100)
    manifest = write_version(
        folder,
        index,
        model="m",
        text_hashes=hashes(len(vectors)),
        dups=near_duplicate_pairs(index, floor=0.9),
        dups_floor=0.9,
        ef_search=100,
        **kwargs,  # type: ignore[arg-type]
    )
    return manifest.version


class TestExactSearch:
    def test_matches_a_brute_force_ranking(self) -> None:
        vectors = clustered(500)
        queries = clustered(40, seed=1)
        index = VectorIndex.build(vectors, hnsw_threshold=501, ef_search=100)
        labels, sims = index.search(queries, 7)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        expected = np.argsort(-(q @ unit.T), axis=1, kind="stable")[:, :7]
        np.testing.assert_array_equal(labels, expected)
        np.testing.assert_allclose(sims, np.take_along_axis(q @ unit.T, expected, axis=1), rtol=1e-5)
        assert np.all(np.diff(sims, axis=1) <= 0)

    def test_ties_go_to_the_lower_label_and_k_is_capped_at_the_count(self) -> None:
        vectors = np.array([[0, 1], [1, 0], [2, 0], [0, 3]], dtype=np.float32)  # 1 and 2 point the same way
        index = VectorIndex.build(vectors, hnsw_threshold=10, ef_search=100)
        labels, sims = index.search(np.array([[5.0, 0.0]]), 10)
        assert labels.tolist() == [[1, 2, 0, 3]]
        np.testing.assert_allclose(sims[0], [1, 1, 0, 0], atol=1e-6)

    def test_a_zero_vector_is_stored_and_never_similar(self) -> None:
        index = VectorIndex.build(
            np.array([[0, 0], [1, 1]], dtype=np.float32), hnsw_threshold=10, ef_search=100
        )
        labels, sims = index.search(np.array([[1.0, 1.0]]), 2)
        assert labels.tolist() == [[1, 0]]
        assert sims[0, 1] == 0.0

    def test_the_threshold_picks_the_kind(self) -> None:
        vectors = clustered(50)
        assert VectorIndex.build(vectors, hnsw_threshold=51, ef_search=100).kind is IndexKind.EXACT
        assert VectorIndex.build(vectors, hnsw_threshold=50, ef_search=100).kind is IndexKind.HNSW


class TestNearDuplicatePairs:
    def test_finds_every_pair_above_the_floor_once(self) -> None:
        rng = np.random.default_rng(3)
        base = rng.normal(size=(60, 16)).astype(np.float32)
        # Rows 60.. slightly perturb rows 0..9: those ten pairs, and only those, are near-duplicates.
        vectors = np.concatenate([base, base[:10] + 0.01 * rng.normal(size=(10, 16)).astype(np.float32)])
        for threshold in (10_000, 0):  # exact, then HNSW
            index = VectorIndex.build(vectors, hnsw_threshold=threshold, ef_search=100)
            pairs = near_duplicate_pairs(index, floor=0.98)
            assert pairs.dtype == DUPS_DTYPE
            assert sorted(zip(pairs["i"].tolist(), pairs["j"].tolist(), strict=True)) == [
                (i, 60 + i) for i in range(10)
            ]
            assert np.all(pairs["similarity"] >= 0.98)


class TestVersionedFiles:
    def test_two_builds_make_v1_and_v2_and_a_reader_takes_the_newest(self, tmp_path: Path) -> None:
        assert write(tmp_path, clustered(20)) == 1
        first = load_newest(tmp_path)
        assert first is not None
        assert first.manifest.version == 1
        assert load_newest(tmp_path) is first  # cached in the process, keyed by (folder, version)
        assert write(tmp_path, clustered(30, seed=2)) == 2
        assert {p.name for p in tmp_path.iterdir()} == {
            "v1.npy",
            "v1.dups.npy",
            "v1.json",
            "v2.npy",
            "v2.dups.npy",
            "v2.json",
        }
        second = load_newest(tmp_path)
        assert second is not None
        assert second.manifest.version == 2
        assert second.index.count == 30
        manifest = json.loads((tmp_path / "v2.json").read_text())
        assert {"version", "count", "dim", "kind", "created_at", "text_hashes"} <= set(manifest)
        assert (manifest["version"], manifest["count"], manifest["dim"], manifest["kind"]) == (
            2,
            30,
            32,
            "exact",
        )
        assert manifest["text_hashes"] == hashes(30)

    def test_half_written_files_are_never_loaded(self, tmp_path: Path) -> None:
        write(tmp_path, clustered(20))
        # A build that died mid-way: its data file under the final name but no manifest, and a manifest
        # still under its temporary name.
        (tmp_path / "v2.npy").write_bytes(b"\x93NUMPY half")
        (tmp_path / ".v2.json.0123.tmp").write_text('{"version": 2, "cou')
        assert versions(tmp_path) == [1]
        loaded = load_newest(tmp_path)
        assert loaded is not None
        assert loaded.manifest.version == 1

    def test_a_data_file_that_does_not_match_its_manifest_is_skipped(self, tmp_path: Path) -> None:
        write(tmp_path, clustered(20))
        write(tmp_path, clustered(20, seed=5))
        data = tmp_path / "v2.npy"
        data.write_bytes(data.read_bytes()[:-8])  # truncated after the manifest was written
        index_module.clear_cache()
        loaded = load_newest(tmp_path)
        assert loaded is not None
        assert loaded.manifest.version == 1

    def test_concurrent_builders_never_share_a_version(self, tmp_path: Path) -> None:
        write(tmp_path, clustered(20))
        # Another builder holds v2 (its lock file exists, its manifest not yet): this one takes v3.
        (tmp_path / "v2.lock").touch()
        assert write(tmp_path, clustered(20)) == 3
        assert not (tmp_path / "v3.lock").exists()

    def test_a_build_in_progress_is_visible_until_it_ends_or_goes_stale(self, tmp_path: Path) -> None:
        assert not build_in_progress(tmp_path, 60)
        with building(tmp_path):
            assert build_in_progress(tmp_path, 60)
            marker = next(tmp_path.glob(".building-*"))
            os.utime(marker, (0, 0))  # a build that crashed long ago
            assert not build_in_progress(tmp_path, 60)
        assert not list(tmp_path.iterdir())

    def test_old_versions_are_pruned(self, tmp_path: Path) -> None:
        for _ in range(5):
            write(tmp_path, clustered(10), keep=2)
        assert versions(tmp_path) == [5, 4]
        assert sorted(os.listdir(tmp_path)) == sorted(
            f"v{v}.{s}" for v in (4, 5) for s in ("npy", "dups.npy", "json")
        )

    def test_hnsw_versions_round_trip(self, tmp_path: Path) -> None:
        vectors = clustered(200)
        index = VectorIndex.build(vectors, hnsw_threshold=0, ef_search=150)
        write_version(
            tmp_path,
            index,
            model="m",
            text_hashes=hashes(200),
            dups=np.empty(0),
            dups_floor=0.9,
            ef_search=150,
        )
        assert (tmp_path / "v1.bin").exists()
        loaded = load_newest(tmp_path)
        assert loaded is not None
        assert loaded.manifest.ef_search == 150
        np.testing.assert_array_equal(
            loaded.index.search(vectors[:20], 5)[0], index.search(vectors[:20], 5)[0]
        )
        assert newest_manifest(tmp_path) == loaded.manifest

    def test_model_names_make_safe_distinct_folder_names(self) -> None:
        a = model_slug("sentence-transformers/all-MiniLM-L6-v2")
        assert a.startswith("sentence-transformers-all-MiniLM-L6-v2-")
        assert "/" not in a
        assert model_slug("/models/x") != model_slug("models/x")
        assert "/" not in model_slug("../../etc")
        assert not model_slug("../../etc").startswith(".")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    index_module.clear_cache()
