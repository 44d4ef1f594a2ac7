"""The pure selection module against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.selection.strategies import cosine_matrix, normalize, seed_for, select_pairs, two_means


def brute_force_cos(vectors: np.ndarray, i: int, j: int) -> float:
    a, b = vectors[i], vectors[j]
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def all_pairs(k: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(k), 2))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


class TestCosineMatrix:
    def test_matches_pairwise_definition(self, rng: np.random.Generator) -> None:
        vectors = rng.normal(size=(7, 16))
        sims = cosine_matrix(vectors)
        for i, j in all_pairs(7):
            assert sims[i, j] == pytest.approx(brute_force_cos(vectors, i, j), abs=1e-12)
        assert np.allclose(np.diag(sims), 1.0)


class TestDissimilarAndSimilar:
    @pytest.mark.parametrize("k", [2, 3, 4, 8, 16])
    def test_argmin_and_argmax_match_brute_force(self, rng: np.random.Generator, k: int) -> None:
        for _ in range(50):
            vectors = rng.normal(size=(k, 24))
            cosines = {(i, j): brute_force_cos(vectors, i, j) for i, j in all_pairs(k)}
            easy = select_pairs(vectors, "dissimilar")[0]
            hard = select_pairs(vectors, "similar")[0]
            assert (easy.i, easy.j) == min(cosines, key=lambda p: (cosines[p], p))
            assert (hard.i, hard.j) == max(cosines, key=lambda p: (cosines[p], -p[0], -p[1]))
            assert easy.similarity == pytest.approx(cosines[(easy.i, easy.j)])
            assert easy.priority == pytest.approx(1 - easy.similarity)

    def test_several_pairs_are_the_next_best_without_repeats(self, rng: np.random.Generator) -> None:
        vectors = rng.normal(size=(6, 8))
        chosen = select_pairs(vectors, "dissimilar", n_pairs=4)
        cosines = sorted((brute_force_cos(vectors, i, j), (i, j)) for i, j in all_pairs(6))
        assert [(c.i, c.j) for c in chosen] == [p for _, p in cosines[:4]]
        assert len({(c.i, c.j) for c in chosen}) == 4

    def test_ties_go_to_the_lowest_indices(self) -> None:
        vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
        easy = select_pairs(vectors, "dissimilar")[0]
        assert (easy.i, easy.j) == (0, 1)

    def test_fewer_than_two_vectors_give_no_pair(self) -> None:
        assert select_pairs(np.ones((1, 3)), "dissimilar") == []


class TestRandom:
    def test_same_seed_same_pair_and_seeds_spread(self, rng: np.random.Generator) -> None:
        vectors = rng.normal(size=(8, 4))
        first = select_pairs(vectors, "random", seed=seed_for("project", "prompt"))
        again = select_pairs(vectors, "random", seed=seed_for("project", "prompt"))
        assert first == again
        picks = {(c.i, c.j) for s in range(200) for c in select_pairs(vectors, "random", seed=s)}
        assert len(picks) > 20  # of the 28 possible pairs: not a fixed choice like the paper's (1, 2)


class TestCentroid:
    def test_two_means_matches_scikit_learn_partition(self, rng: np.random.Generator) -> None:
        from sklearn.cluster import KMeans

        for _ in range(40):
            centres = rng.normal(size=(2, 12)) * 3
            vectors = np.concatenate(
                [centres[0] + rng.normal(size=(4, 12)), centres[1] + rng.normal(size=(4, 12))]
            )
            unit = normalize(vectors)
            ours = two_means(unit)
            ours_labels = np.argmin(((unit[:, None] - ours[None]) ** 2).sum(-1), axis=1)
            kmeans = KMeans(2, random_state=0, n_init=10).fit(unit)
            theirs = kmeans.labels_
            # Clear clusters: scikit-learn's best of 10 starts finds the optimum, which is ours.
            assert (ours_labels == theirs).all() or (ours_labels == 1 - theirs).all()
            assert ((unit - ours[ours_labels]) ** 2).sum() <= kmeans.inertia_ + 1e-9

    def test_picks_the_response_nearest_each_centre(self, rng: np.random.Generator) -> None:
        vectors = np.concatenate([np.tile([1.0, 0.0, 0.0], (3, 1)), np.tile([0.0, 1.0, 0.0], (3, 1))])
        vectors = vectors + rng.normal(scale=0.01, size=vectors.shape)
        pair = select_pairs(vectors, "centroid")[0]
        assert (pair.i < 3) != (pair.j < 3)  # one from each cluster

    def test_both_centres_nearest_one_response_still_gives_two_responses(self) -> None:
        vectors = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
        pair = select_pairs(vectors, "centroid")[0]
        assert pair.i != pair.j


# --- Batched selection against brute force (hypothesis) ---------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from app.selection.strategies import collapse_near_duplicates, select_batch  # noqa: E402


def reference(vectors: np.ndarray, strategy: str, threshold: float | None) -> tuple[list[int], list[float]]:
    """Plain Python: collapse near-duplicates greedily; every remaining pair's score, best first."""
    k = len(vectors)
    cos = {(i, j): brute_force_cos(vectors, i, j) for i in range(k) for j in range(k) if i != j}
    kept: list[int] = []
    for i in range(k):
        if threshold is None or all(cos[(i, j)] < threshold for j in kept):
            kept.append(i)
    scores = [
        (1 - cos[(i, j)]) if strategy == "dissimilar" else (1 + cos[(i, j)])
        for i in kept
        for j in kept
        if i < j
    ]
    return kept, sorted(scores, reverse=True)


batches = st.integers(min_value=1, max_value=6).flatmap(
    lambda p: st.integers(min_value=2, max_value=7).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, (p, k, 5), elements=st.floats(-1, 1, allow_nan=False, width=32)),
            arrays(np.bool_, (p, k)),
        )
    )
)


class TestBatchAgainstBruteForce:
    @settings(max_examples=150, deadline=None)
    @given(
        batch=batches,
        strategy=st.sampled_from(["dissimilar", "similar"]),
        n_pairs=st.integers(1, 4),
        threshold=st.sampled_from([None, 0.9, 0.98]),
    )
    def test_matches_reference(
        self, batch: tuple[np.ndarray, np.ndarray], strategy: str, n_pairs: int, threshold: float | None
    ) -> None:
        vectors, mask = batch
        selection = select_batch(vectors, mask, strategy, n_pairs, near_duplicate_threshold=threshold)
        for p in range(len(vectors)):
            rows = np.flatnonzero(mask[p])
            if np.any(np.linalg.norm(vectors[p][rows], axis=1) == 0):
                continue  # a zero vector has no direction; cosine is undefined
            kept, best = reference(vectors[p][rows], strategy, threshold)
            chosen = selection.choices(p)
            # The chosen pairs carry the n best scores (ties may pick either pair: same score).
            assert [c.priority for c in chosen] == pytest.approx(best[:n_pairs], abs=1e-9)
            assert list(np.flatnonzero(selection.kept[p])) == [rows[i] for i in kept]
            for c in chosen:
                assert c.similarity == pytest.approx(brute_force_cos(vectors[p], c.i, c.j), abs=1e-9)

    @settings(max_examples=60, deadline=None)
    @given(batch=batches, strategy=st.sampled_from(["dissimilar", "similar", "random", "centroid"]))
    def test_batch_equals_one_prompt_at_a_time(
        self, batch: tuple[np.ndarray, np.ndarray], strategy: str
    ) -> None:
        vectors, mask = batch
        seeds = list(range(len(vectors)))
        together = select_batch(vectors, mask, strategy, 2, seeds)
        for p in range(len(vectors)):
            alone = select_batch(vectors[p : p + 1], mask[p : p + 1], strategy, 2, seeds[p : p + 1])
            assert together.choices(p) == alone.choices(0)

    @settings(max_examples=60, deadline=None)
    @given(batch=batches)
    def test_every_choice_is_a_distinct_pair_of_existing_kept_responses(
        self, batch: tuple[np.ndarray, np.ndarray]
    ) -> None:
        vectors, mask = batch
        for strategy in ("dissimilar", "similar", "random", "centroid"):
            selection = select_batch(vectors, mask, strategy, 3, near_duplicate_threshold=0.98)
            for p in range(len(vectors)):
                chosen = [(c.i, c.j) for c in selection.choices(p)]
                assert len(set(chosen)) == len(chosen)
                assert all(i < j and selection.kept[p, i] and selection.kept[p, j] for i, j in chosen)
                kept = int(selection.kept[p].sum())
                assert len(chosen) == min(3, kept * (kept - 1) // 2)


class TestNearDuplicates:
    def test_near_identical_responses_are_never_paired(self) -> None:
        base = np.array([1.0, 0.0, 0.0])
        vectors = np.array([base, base + [0.0, 0.01, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        pairs = select_pairs(vectors, "similar", n_pairs=6, near_duplicate_threshold=0.98)
        assert all({c.i, c.j} != {0, 1} for c in pairs)
        assert len(pairs) == 3  # responses 0, 2, 3 remain

    def test_collapse_is_greedy_in_order(self) -> None:
        sims = np.array([[[1.0, 0.99, 0.5], [0.99, 1.0, 0.99], [0.5, 0.99, 1.0]]])
        kept = collapse_near_duplicates(sims, np.ones((1, 3), dtype=bool), 0.98)
        assert kept.tolist() == [[True, False, True]]  # 1 duplicates 0; 2 is compared with kept 0 only

    def test_no_threshold_keeps_everything(self) -> None:
        vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        assert len(select_pairs(vectors, "dissimilar", n_pairs=3, near_duplicate_threshold=None)) == 3


class TestCentroidChoice:
    def test_centroid_pair_is_nearest_each_scikit_learn_centre(self, rng: np.random.Generator) -> None:
        from sklearn.cluster import KMeans

        matches = 0
        for _ in range(30):
            centres = rng.normal(size=(2, 10)) * 3
            vectors = np.concatenate(
                [centres[0] + rng.normal(size=(4, 10)), centres[1] + rng.normal(size=(3, 10))]
            )
            unit = normalize(vectors)
            km = KMeans(2, random_state=0, n_init=10).fit(unit)
            nearest = sorted(int(np.argmin(((unit - c) ** 2).sum(axis=1))) for c in km.cluster_centers_)
            chosen = select_pairs(vectors, "centroid")[0]
            matches += int([chosen.i, chosen.j] == nearest)
        assert matches == 30
