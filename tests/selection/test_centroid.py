"""The centroid strategy: the global 2-means optimum, lowest-index ties, and the paper's KMeans on real data.

The REAL paper's code runs scikit-learn ``KMeans(2, random_state=0)`` on the L2-normalised response vectors
and picks the response nearest each centre. References here are computed independently: plain Python over
every labelling, and scikit-learn itself.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.selection.strategies import normalize, select_batch, select_pairs, two_means_partition

ROOT = Path(__file__).resolve().parents[2]
# Real prompts with 4 and 6 responses, and 200 two-response prompts whose responses are pooled below.
REAL_SOURCES = (
    ROOT / "data/demo/alpaca_eval_demo.jsonl",
    ROOT / "tests/data/alpaca_eval_20x4.jsonl",
    ROOT / "tests/data/hh_rlhf_harmless_200.jsonl",
)
TIE = 1e-9

Vectors = npt.NDArray[np.float64]


def inertia(unit: Vectors, second: npt.NDArray[np.bool_]) -> float:
    """Σ squared distances to the cluster means, straight from the vectors (no Gram matrix)."""
    return float(sum(((unit[side] - unit[side].mean(axis=0)) ** 2).sum() for side in (~second, second)))


def partition(unit: Vectors) -> npt.NDArray[np.bool_]:
    return two_means_partition((unit @ unit.T)[None], np.ones((1, len(unit)), dtype=bool))[0]


def brute_force_least_inertia(unit: Vectors) -> float:
    k = len(unit)
    return min(
        inertia(unit, np.array((False, *labels)))
        for labels in itertools.product((False, True), repeat=k - 1)
        if any(labels)
    )


def paper_pick(unit: Vectors, centres: Vectors) -> tuple[int, int]:
    """The response nearest each centre, distance ties to the lowest index; a taken one goes to the next."""
    dist = ((unit[None, :, :] - centres[:, None, :]) ** 2).sum(axis=2)
    first = int(np.flatnonzero(dist[0] <= dist[0].min() + TIE)[0])
    dist[1, first] = np.inf
    second = int(np.flatnonzero(dist[1] <= dist[1].min() + TIE)[0])
    return min(first, second), max(first, second)


def centroid_pick(vectors: npt.ArrayLike) -> tuple[int, int]:
    choice = select_pairs(np.asarray(vectors), "centroid")[0]
    return choice.i, choice.j


def rotation(rng: np.random.Generator, dim: int) -> Vectors:
    """A random orthogonal matrix: exact symmetries survive it only up to float rounding."""
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))


def on_circle(*degrees: float) -> Vectors:
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


class TestGlobalOptimum:
    def test_finds_the_optimum_where_farthest_point_starts_stop_short(self) -> None:
        # Lloyd from (s, farthest from s) ends at {90°, 180°, 225°} | {330°} (inertia 2) from every s; the
        # optimum is {90°, 330°} | {180°, 225°}: 3/2 + (1 − √2/2) ≈ 1.793.
        unit = on_circle(90, 180, 225, 330)
        assert partition(unit).tolist() == [False, True, True, False]
        assert inertia(unit, partition(unit)) == pytest.approx(2.5 - np.sqrt(0.5), abs=1e-12)
        # Each centre is equidistant from its two members, so the lowest index of each cluster is picked.
        assert centroid_pick(unit) == (0, 1)

    @pytest.mark.parametrize("k", [2, 3, 5, 8, 9])
    def test_inertia_equals_the_least_over_every_bipartition(self, k: int) -> None:
        rng = np.random.default_rng(k)
        for _ in range(40):
            unit = normalize(rng.normal(size=(k, 3)))
            assert inertia(unit, partition(unit)) == pytest.approx(brute_force_least_inertia(unit), abs=1e-12)

    def test_padding_and_invalid_responses_do_not_change_the_partition(self) -> None:
        rng = np.random.default_rng(7)
        unit = normalize(rng.normal(size=(6, 3)))
        alone = partition(unit)
        padded = np.concatenate([rng.normal(size=(2, 3)), unit, rng.normal(size=(3, 3))])
        mask = np.array([False, False] + [True] * 6 + [False] * 3)
        gram = normalize(padded) @ normalize(padded).T
        together = two_means_partition(gram[None], mask[None])[0]
        assert together[2:8].tolist() == alone.tolist()
        assert not together[~mask].any()

    def test_equal_inertia_partitions_take_the_lexicographically_first_labelling(self) -> None:
        # A square: {0, 1} | {2, 3} and {0, 3} | {1, 2} have the same inertia; with the first response in the
        # first cluster, (0, 0, 1, 1) comes before (0, 1, 1, 0).
        rng = np.random.default_rng(3)
        for _ in range(20):
            unit = np.pad(on_circle(0, 90, 180, 270), ((0, 0), (0, 3))) @ rotation(rng, 5)
            assert partition(unit).tolist() == [False, False, True, True]
            assert centroid_pick(unit) == (0, 2)

    def test_above_sixteen_responses_lloyd_still_separates_clear_clusters(self) -> None:
        rng = np.random.default_rng(11)
        centres = normalize(rng.normal(size=(2, 16)))
        members = rng.integers(0, 2, size=24)
        vectors = centres[members] + rng.normal(scale=0.05, size=(24, 16))
        second = partition(normalize(vectors))
        assert (second == (members != members[0])).all()
        i, j = centroid_pick(vectors)
        assert members[i] != members[j]

    def test_above_sixteen_responses_every_pair_is_two_valid_responses(self) -> None:
        rng = np.random.default_rng(13)
        vectors = rng.normal(size=(40, 20, 5))
        vectors[0] = 1.0  # identical responses: Lloyd leaves the second cluster empty
        mask = rng.random((40, 20)) < 0.6
        mask[0] = True
        selection = select_batch(vectors, mask, "centroid")
        for p in range(40):
            if mask[p].sum() < 2:
                continue
            (choice,) = selection.choices(p)
            assert choice.i < choice.j
            assert mask[p, [choice.i, choice.j]].all()
        assert (selection.i[0, 0], selection.j[0, 0]) == (0, 1)


class TestDistanceTies:
    @pytest.mark.parametrize(
        ("degrees", "expected"),
        [
            ((0, 170, 190), (0, 1)),  # the tied pair is the second cluster
            ((170, 190, 0), (0, 2)),  # the tied pair is the first cluster
            ((190, 0, 170), (0, 1)),  # the tied pair is 0 and 2, with the other cluster between
            ((10, 190, 170, 350), (0, 1)),  # two tied pairs
        ],
    )
    def test_a_two_member_cluster_picks_its_lowest_index(
        self, degrees: tuple[float, ...], expected: tuple[int, int]
    ) -> None:
        # Rotated into 6 dimensions, the two members' distances to their centre differ by float noise only.
        rng = np.random.default_rng(5)
        flat = np.pad(on_circle(*degrees), ((0, 0), (0, 4)))
        picks = {centroid_pick(flat @ rotation(rng, 6)) for _ in range(40)}
        assert picks == {expected}

    def test_both_centres_nearest_one_response_gives_the_second_its_next_nearest(self) -> None:
        vectors = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
        assert centroid_pick(vectors) == (0, 1)

    def test_batch_and_single_prompt_agree_on_ties(self) -> None:
        rng = np.random.default_rng(9)
        prompts = [np.pad(on_circle(0, 170, 190), ((0, 0), (0, 4))) @ rotation(rng, 6) for _ in range(30)]
        vectors = np.stack(prompts)
        selection = select_batch(vectors, np.ones(vectors.shape[:2], dtype=bool), "centroid")
        assert {(c.i, c.j) for p in range(len(prompts)) for c in selection.choices(p)} == {(0, 1)}


def _real_prompts() -> tuple[list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]]:
    """Each real prompt's response vectors (4 and 6 responses), and the distinct responses of all files."""
    from app.config import DEFAULT_EMBEDDING_MODEL
    from app.embeddings.embedder import get_embedder

    prompts: list[list[str]] = []
    for source in REAL_SOURCES:
        for line in source.read_text("utf-8").splitlines():
            prompts.append([r["text"] for r in json.loads(line)["responses"]])
    distinct = list(dict.fromkeys(text for texts in prompts for text in texts))
    vectors = get_embedder(DEFAULT_EMBEDDING_MODEL).encode(distinct).vectors
    by_text = dict(zip(distinct, vectors, strict=True))
    per_prompt = [np.stack([by_text[t] for t in texts]) for texts in prompts if len(set(texts)) > 2]
    return per_prompt, list(vectors)


@pytest.fixture(scope="module")
def real_cases() -> list[npt.NDArray[np.float32]]:
    """The 60 real prompts with more than two responses, and 60 groups of 8, 12 and 16 pooled responses.

    Pooled groups come from different prompts, so they lack the clean two-cluster shape of one prompt's
    answers: the harder case for 2-means.
    """
    per_prompt, pool = _real_prompts()
    rng = np.random.default_rng(2409_17169)
    pooled = [
        np.stack([pool[n] for n in rng.choice(len(pool), size=k, replace=False)])
        for k in (8, 12, 16)
        for _ in range(20)
    ]
    return per_prompt + pooled


@pytest.mark.embedding
class TestAgainstScikitLearnOnRealResponses:
    # n_init=10 was scikit-learn's default until 1.4, "auto" (one k-means++ start) is the default since.
    @pytest.mark.parametrize("n_init", [10, "auto"])
    def test_partition_is_never_worse_and_equal_ones_give_the_papers_pick(
        self, real_cases: list[npt.NDArray[np.float32]], n_init: int | str
    ) -> None:
        from sklearn.cluster import KMeans

        assert len(real_cases) == 120
        same = 0
        for vectors in real_cases:
            unit = normalize(vectors.astype(np.float64))
            kmeans = KMeans(2, random_state=0, n_init=n_init).fit(unit)
            theirs = kmeans.labels_ == 1
            ours = partition(unit)
            assert inertia(unit, ours) <= inertia(unit, theirs) + TIE
            if inertia(unit, ours) < inertia(unit, theirs) - TIE:
                continue  # scikit-learn stopped at a local optimum: its pick is not the 2-means pick
            same += 1
            assert (ours == theirs).all() or (ours == ~theirs).all()
            # The paper's pick, made deterministic: ties to the lowest index, and the centre of the cluster
            # holding response 0 first (scikit-learn's label order is arbitrary).
            centres = kmeans.cluster_centers_[::-1] if theirs[0] else kmeans.cluster_centers_
            assert centroid_pick(vectors) == paper_pick(unit, centres)
        # Enough comparisons reach the pick check for it to mean something. Measured: scikit-learn finds the
        # optimum in 70 of 120 with n_init=10 (57 of the 60 prompts) and 33 with "auto"; pooled groups of
        # 12 and 16 unrelated responses defeat it most often.
        assert same >= (65 if n_init == 10 else 30)
