"""The simulator's loop on synthetic vectors with a planted preference: no model, a second or two."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from app.active.acquisition import priority
from app.active.reward_model import features, fit
from app.selection.strategies import cosine_matrix, select_batch
from app.simulation import report
from app.simulation.annotators import ConstantNoise, SimilarityNoise
from app.simulation.engine import (
    Annotator,
    Config,
    Pool,
    active_sequence,
    pair_similarities,
    run,
    split,
    static_sequence,
    tie_rate_by_similarity,
)
from tests.simulation.synthetic import planted

CONFIG = Config(budgets=(20, 40, 80, 160), repeats=3, every=20, round_size=20)


@pytest.fixture(scope="module")
def pool() -> Pool:
    data, vectors = planted()
    return Pool.build(data, vectors)


def summary_json(pool: Pool, config: Config) -> str:
    return json.dumps(report.summarise(run(pool, config), tie_rate_by_similarity(pool)), sort_keys=True)


def test_a_seed_gives_identical_results_and_another_seed_others(pool: Pool) -> None:
    config = replace(CONFIG, noise=SimilarityNoise())
    first = summary_json(pool, config)
    assert summary_json(pool, config) == first
    assert summary_json(pool, replace(config, seed=1)) != first


def test_the_result_records_the_similarity_ramp_it_used(pool: Pool) -> None:
    result = run(pool, replace(CONFIG, repeats=1, noise=SimilarityNoise()))
    cosines = pair_similarities(pool)
    assert isinstance(result.config.noise, SimilarityNoise)
    assert result.config.noise.similarity_low == pytest.approx(np.quantile(cosines, 0.05))
    assert result.config.noise.similarity_high == pytest.approx(np.quantile(cosines, 0.95))


def test_a_planted_preference_is_learned_from_the_labels(pool: Pool) -> None:
    result = run(pool, CONFIG)
    for strategy, curves in result.curves.items():
        accuracy = np.mean([c.accuracy for c in curves], axis=0)
        assert accuracy[-1] >= 0.85, strategy
        assert accuracy[-1] >= accuracy[0] + 0.05, strategy
        errors = np.mean([c.label_error for c in curves], axis=0)
        assert errors[-1] == pytest.approx(0.1, abs=0.05), strategy  # ε = 0.1 and no ties


def test_noise_free_labels_are_never_wrong_and_noise_costs_accuracy(pool: Pool) -> None:
    clean = run(pool, replace(CONFIG, noise=ConstantNoise(0.0)))
    noisy = run(pool, replace(CONFIG, noise=ConstantNoise(0.4)))
    for strategy in CONFIG.strategies:
        assert all(not c.label_error.any() for c in clean.curves[strategy])
        clean_final = np.mean([c.accuracy[-1] for c in clean.curves[strategy]])
        noisy_final = np.mean([c.accuracy[-1] for c in noisy.curves[strategy]])
        assert clean_final > noisy_final, strategy


def test_static_strategies_take_the_services_pairs_in_queue_order(pool: Pool) -> None:
    train, _ = split(pool.size, 0.2, seed=0, repeat=0)
    for strategy in ("dissimilar", "similar", "centroid"):
        seq = static_sequence(pool, train, strategy, CONFIG, repeat=0)
        selection = select_batch(pool.vectors[train], pool.mask[train], strategy, 1, None, 0.98)
        by_prompt = {
            int(p): (int(i), int(j))
            for p, i, j in zip(train, selection.i[:, 0], selection.j[:, 0], strict=True)
        }
        assert [by_prompt[int(p)] for p in seq.prompt] == list(
            zip(seq.i.tolist(), seq.j.tolist(), strict=True)
        )
        assert sorted(seq.prompt.tolist()) == train.tolist()  # every prompt once
        sims = Annotator(pool, ConstantNoise(), 0, 0).similarity(seq)
        if strategy == "similar":
            assert np.all(np.diff(sims) <= 1e-12)  # most similar first
        else:
            assert np.all(np.diff(sims) >= -1e-12)  # least similar first (1 - cos, highest first)


def test_random_order_differs_by_repeat(pool: Pool) -> None:
    train, _ = split(pool.size, 0.2, seed=0, repeat=0)
    first = static_sequence(pool, train, "random", CONFIG, repeat=0)
    again = static_sequence(pool, train, "random", CONFIG, repeat=0)
    other = static_sequence(pool, train, "random", CONFIG, repeat=1)
    assert np.array_equal(first.prompt, again.prompt)
    assert not np.array_equal(first.prompt, other.prompt)


def test_pair_probabilities_equal_the_reward_models_own(pool: Pool) -> None:
    rng = np.random.default_rng(0)
    model = fit(rng.normal(size=(30, pool.vectors.shape[2])), rng.random(30) < 0.5)
    iu, ju = (np.asarray(a, dtype=np.int64) for a in np.triu_indices(pool.mask.shape[1], k=1))
    fast = model.pair_probabilities(pool.vectors, iu, ju)
    slow = model.probability(
        features(pool.vectors[:, iu].reshape(-1, 16), pool.vectors[:, ju].reshape(-1, 16))
    )
    assert fast == pytest.approx(slow.reshape(fast.shape), abs=1e-12)


def test_active_is_dissimilar_first_then_follows_the_priority_brute_force(pool: Pool) -> None:
    config = replace(CONFIG, round_size=10)
    train, _ = split(pool.size, 0.2, seed=0, repeat=0)
    annotator = Annotator(pool, config.noise, config.seed, 0)
    seq = active_sequence(pool, train, annotator, config, budget=20)
    dissimilar = static_sequence(pool, train, "dissimilar", config, repeat=0)
    first = slice(0, 10)
    assert seq.prompt[first].tolist() == dissimilar.prompt[first].tolist()
    assert seq.i[first].tolist() == dissimilar.i[first].tolist()
    assert seq.j[first].tolist() == dissimilar.j[first].tolist()

    # The second round, recomputed pair by pair from the first round's labels.
    labels = annotator.label(type(seq)(seq.prompt[first], seq.i[first], seq.j[first]))
    v = pool.vectors
    model = fit(
        features(v[seq.prompt[first], seq.i[first]], v[seq.prompt[first], seq.j[first]]), labels.a_won
    )
    labelled = np.concatenate([v[seq.prompt[first], seq.i[first]], v[seq.prompt[first], seq.j[first]]])
    best: list[tuple[float, int, int, int]] = []
    for p in train:
        if p in seq.prompt[first]:
            continue
        sims = cosine_matrix(v[p])
        candidates = []
        for i in range(4):
            for j in range(i + 1, 4):
                prob = model.probability(features(v[p, i], v[p, j]))[0]
                near_i, near_j = (labelled @ v[p, i]).max(), (labelled @ v[p, j]).max()
                candidates.append((float(priority(sims[i, j], prob, near_i, near_j)), i, j))
        score, i, j = max(candidates, key=lambda c: (c[0], -c[1], -c[2]))
        best.append((score, int(p), i, j))
    best.sort(key=lambda b: (-b[0], b[1]))
    expected = [(p, i, j) for _, p, i, j in best[:10]]
    got = list(zip(seq.prompt[10:].tolist(), seq.i[10:].tolist(), seq.j[10:].tolist(), strict=True))
    assert got == expected


def test_active_without_its_weights_is_dissimilar_throughout(pool: Pool) -> None:
    config = replace(CONFIG, uncertainty_weight=0.0, novelty_weight=0.0)
    train, _ = split(pool.size, 0.2, seed=0, repeat=0)
    seq = active_sequence(pool, train, Annotator(pool, config.noise, 0, 0), config, budget=160)
    dissimilar = static_sequence(pool, train, "dissimilar", config, repeat=0)
    assert seq.prompt.tolist() == dissimilar.prompt[:160].tolist()
    assert seq.i.tolist() == dissimilar.i[:160].tolist()
    assert seq.j.tolist() == dissimilar.j[:160].tolist()


def test_a_budget_beyond_the_training_prompts_is_refused(pool: Pool) -> None:
    with pytest.raises(ValueError, match="needs as many training prompts with a pair, but repeat 0 has 160"):
        run(pool, replace(CONFIG, budgets=(100, 161)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"budgets": (40, 20)}, "increasing"),
        ({"budgets": ()}, "positive"),
        ({"strategies": ("dissimilar", "best")}, "among"),
        ({"held_out": 1.0}, "between 0 and 1"),
        ({"repeats": 0}, "at least 1"),
    ],
)
def test_config_refuses_what_cannot_run(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(CONFIG, **change)


def test_tie_rate_bins_cover_every_pair_once() -> None:
    data, vectors = planted(prompts=60, levels=2)
    pool = Pool.build(data, vectors)
    bins = tie_rate_by_similarity(pool, bins=5)
    assert sum(b.pairs for b in bins) == 60 * 6
    scores = pool.scores
    ties = sum(
        int(scores[p, i] == scores[p, j]) for p in range(60) for i in range(4) for j in range(i + 1, 4)
    )
    assert sum(b.ties for b in bins) == ties
    assert [b.low for b in bins[1:]] == [b.high for b in bins[:-1]]
