"""Simulated annotators: flip rates match the noise models, ties are coin flips, draws are per pair."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.simulation.annotators import ConstantNoise, SimilarityNoise, annotate, truth
from app.simulation.engine import Annotator, Pairs, Pool
from app.simulation.inputs import Prompt, Response, SimulationInput

N = 20_000  # pairs per group: a share's standard error is at most 0.0036


def within(share: float, p: float, n: int) -> bool:
    """|share - p| below 4 standard errors of a binomial share."""
    return abs(share - p) < 4 * math.sqrt(p * (1 - p) / n) + 1e-12


def two_response_pool(cosines: np.ndarray, scores: tuple[float, float] = (1.0, 0.0)) -> Pool:
    """One prompt per cosine: responses (1, 0) and (s, √(1 − s²)), whose cosine is exactly s."""
    a = np.tile([1.0, 0.0], (len(cosines), 1))
    b = np.stack([cosines, np.sqrt(1 - cosines**2)], axis=1)
    prompts = tuple(
        Prompt(f"p{n}", "", (Response("a", f"a{n}", scores[0]), Response("b", f"b{n}", scores[1])), n + 1)
        for n in range(len(cosines))
    )
    return Pool.build(SimulationInput("responses", prompts), np.stack([a, b], axis=1).reshape(-1, 2))


def all_pairs(pool: Pool) -> Pairs:
    n = pool.size
    return Pairs(np.arange(n), np.zeros(n, dtype=np.int64), np.ones(n, dtype=np.int64))


def test_truth_is_the_sign_of_the_score_difference() -> None:
    assert truth([1.0, 0.0, 0.5, 0.5], [0.0, 1.0, 0.5, 0.0]).tolist() == [1, -1, 0, 1]


def test_similarity_noise_is_the_documented_ramp() -> None:
    noise = SimilarityNoise(epsilon_min=0.1, epsilon_max=0.3, similarity_low=0.2, similarity_high=0.6)
    got = noise.flip_probability([-1.0, 0.2, 0.3, 0.4, 0.6, 0.99])
    assert got == pytest.approx([0.1, 0.1, 0.15, 0.2, 0.3, 0.3])
    assert ConstantNoise(0.25).flip_probability([0.0, 0.9]).tolist() == [0.25, 0.25]


@pytest.mark.parametrize(
    "bad", [{"epsilon_min": -0.1}, {"epsilon_max": 1.5}, {"similarity_low": 0.5, "similarity_high": 0.3}]
)
def test_similarity_noise_refuses_impossible_parameters(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        SimilarityNoise(**bad)


def test_the_default_ramp_runs_between_the_datas_5th_and_95th_percentile() -> None:
    cosines = np.linspace(0.0, 1.0, 101)  # percentiles fall on the grid: 5th = 0.05, 95th = 0.95
    noise = SimilarityNoise().resolved(cosines)
    assert (noise.similarity_low, noise.similarity_high) == pytest.approx((0.05, 0.95))
    assert noise.flip_probability([0.0, 0.5, 1.0]) == pytest.approx([0.05, 0.225, 0.40])
    kept = SimilarityNoise(similarity_low=0.2).resolved(cosines)
    assert (kept.similarity_low, kept.similarity_high) == pytest.approx((0.2, 0.95))
    with pytest.raises(ValueError, match="unset"):
        SimilarityNoise().flip_probability([0.5])
    with pytest.raises(ValueError, match="before it starts"):
        SimilarityNoise().resolved(np.full(10, 0.7))


def test_annotate_flips_decided_pairs_and_tosses_a_coin_for_ties() -> None:
    labels = annotate([1, 1, -1, -1, 0, 0], [0.5] * 6, [0.9, 0.1, 0.9, 0.1, 0.0, 0.0], [0, 0, 0, 0, 0.2, 0.7])
    assert labels.a_won.tolist() == [True, False, False, True, True, False]
    assert labels.wrong.tolist() == [False, True, False, True, False, False]  # a tie is never wrong
    assert labels.tie.tolist() == [False, False, False, False, True, True]


def test_constant_noise_flips_epsilon_of_decided_labels() -> None:
    pool = two_response_pool(np.full(N, 0.5))
    labels = Annotator(pool, ConstantNoise(0.2), seed=3, repeat=0).label(all_pairs(pool))
    assert within(float(labels.wrong.mean()), 0.2, N)
    assert np.array_equal(labels.a_won, ~labels.wrong)  # a is the truth here


def test_similarity_noise_flips_more_of_the_similar_pairs() -> None:
    groups = {0.1: 0.05, 0.6: 0.225, 0.95: 0.40}  # cosine -> ε(s) on the ramp 0.3..0.9
    cosines = np.repeat(list(groups), N)
    pool = two_response_pool(cosines)
    annotator = Annotator(pool, SimilarityNoise(0.05, 0.40, 0.30, 0.90), seed=3, repeat=0)
    pairs = all_pairs(pool)
    assert annotator.similarity(pairs) == pytest.approx(cosines)
    wrong = annotator.label(pairs).wrong
    for g, (cosine, epsilon) in enumerate(groups.items()):
        share = float(wrong[g * N : (g + 1) * N].mean())
        assert within(share, epsilon, N), (cosine, share, epsilon)


def test_a_true_tie_is_labelled_a_half_of_the_time_and_never_wrong() -> None:
    pool = two_response_pool(np.full(N, 0.5), scores=(0.5, 0.5))
    labels = Annotator(pool, ConstantNoise(0.3), seed=3, repeat=0).label(all_pairs(pool))
    assert labels.tie.all()
    assert not labels.wrong.any()
    assert within(float(labels.a_won.mean()), 0.5, N)


def test_draws_belong_to_the_pair_so_every_strategy_meets_the_same_annotator() -> None:
    pool = two_response_pool(np.full(1000, 0.5))
    annotator = Annotator(pool, ConstantNoise(0.5), seed=3, repeat=0)
    pairs = all_pairs(pool)
    forward = annotator.label(pairs).a_won
    order = np.random.default_rng(0).permutation(1000)
    shuffled = annotator.label(Pairs(pairs.prompt[order], pairs.i[order], pairs.j[order])).a_won
    assert np.array_equal(shuffled, forward[order])
    other_repeat = Annotator(pool, ConstantNoise(0.5), seed=3, repeat=1).label(pairs).a_won
    assert not np.array_equal(other_repeat, forward)
