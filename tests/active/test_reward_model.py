"""The Bradley–Terry reward model on embeddings, without a database."""

from __future__ import annotations

import numpy as np
import pytest

from app.active.reward_model import accuracy, cross_validate, features, fit, fold_of, log_loss, sigmoid, unit


def planted(n: int, d: int, seed: int, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Comparisons of random unit vectors whose winner follows a hidden linear preference."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=d)
    a, b = unit(rng.normal(size=(n, d))), unit(rng.normal(size=(n, d)))
    margin = (a - b) @ truth
    won = (margin + rng.normal(scale=noise, size=n)) > 0
    return features(a, b), won, truth


def test_recovers_a_planted_linear_preference() -> None:
    x, won, truth = planted(2_000, 32, seed=1)
    model = fit(x[:1_000], won[:1_000], l2=0.1)
    assert accuracy(won[1_000:], model.probability(x[1_000:])) > 0.95
    cosine = model.weights @ truth / (np.linalg.norm(model.weights) * np.linalg.norm(truth))
    assert cosine > 0.95


def test_swapping_the_responses_flips_the_probability() -> None:
    x, won, _ = planted(300, 16, seed=2)
    model = fit(x, won)
    assert np.allclose(model.probability(-x), 1.0 - model.probability(x))


def test_a_zero_weight_is_no_comparison() -> None:
    x, won, _ = planted(300, 8, seed=3)
    weights = np.ones(300)
    weights[::3] = 0.0
    kept = weights > 0
    assert np.allclose(fit(x, won, weights).weights, fit(x[kept], won[kept]).weights, atol=1e-8)


def test_separable_data_gives_finite_weights() -> None:
    x, won, _ = planted(50, 64, seed=4)  # fewer comparisons than features: separable
    model = fit(x, won, l2=1e-3)  # little regularisation: it fits every comparison, yet stays finite
    assert np.all(np.isfinite(model.weights))
    assert accuracy(won, model.probability(x)) == 1.0


def test_cross_validation_is_out_of_fold_and_deterministic() -> None:
    x, won, _ = planted(400, 16, seed=5, noise=0.2)
    first = cross_validate(x, won, folds=5, seed=7)
    again = cross_validate(x, won, folds=5, seed=7)
    assert np.array_equal(first.probabilities, again.probabilities)
    assert first.accuracy > 0.85
    assert first.log_loss == pytest.approx(log_loss(won, first.probabilities))
    # A comparison's out-of-fold probability comes from a model that never saw it.
    folds = fold_of(400, 5, 7)
    held = folds == 0
    alone = fit(x[~held], won[~held]).probability(x[held])
    assert np.allclose(first.probabilities[held], alone)
    assert np.bincount(folds).tolist() == [80] * 5


def test_prompt_interaction_features() -> None:
    a, b, prompt = np.eye(3)[[0]], np.eye(3)[[1]], np.array([[0.0, 2.0, 0.0]])
    assert features(a, b).tolist() == [[1.0, -1.0, 0.0]]
    assert features(a, b, prompt).tolist() == [[1.0, -1.0, 0.0, 0.0, -1.0, 0.0]]


def test_sigmoid_is_stable() -> None:
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one label"):
        fit(np.zeros((3, 2)), [1, 0])
    with pytest.raises(ValueError, match="positive"):
        fit(np.zeros((2, 2)), [1, 0], l2=0.0)
