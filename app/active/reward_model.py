"""A Bradley–Terry reward model on response embeddings: numpy in, numbers out, no database and no HTTP.

Each decided pair is a comparison: P(a beats b) = σ(w · (φ(a) − φ(b))), where φ is a response's unit-length
embedding (responses are embedded on their own, as REAL does), optionally followed by its element-wise
product with the prompt's unit embedding (``prompt_interaction``: a preference that depends on the prompt).
There is no intercept, so swapping a and b flips the probability exactly (σ(−z) = 1 − σ(z)). ``w`` is fitted
by L2-regularised logistic regression (Newton's method; the objective is strictly convex), each comparison
weighted (e.g. by its Dawid–Skene posterior). ``cross_validate`` gives out-of-fold probabilities, accuracy
and log-loss with deterministic folds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_L2 = 1.0
_MAX_NEWTON_STEPS = 50
_TOLERANCE = 1e-9
_CLIP = 1e-12  # probabilities are kept in [1e-12, 1 - 1e-12] inside the log-loss


@dataclass(frozen=True)
class RewardModel:
    """The fitted weights over the comparison features (``features`` names how they were built)."""

    weights: FloatArray
    features: str  # "diff" or "diff+prompt"

    def probability(self, x: FloatArray) -> FloatArray:
        """P(response a beats response b) for rows of comparison features."""
        return sigmoid(np.asarray(x, dtype=np.float64) @ self.weights)

    def pair_probabilities(self, vectors: npt.ArrayLike, i: npt.ArrayLike, j: npt.ArrayLike) -> FloatArray:
        """P(response i beats response j) for the candidate pairs (i, j) of every prompt of padded (P, k, d)
        ``vectors``: (P, pairs). A "diff" model only: by linearity σ(w · (φ(a) − φ(b))) = σ(w · φ(a) −
        w · φ(b)), one projection per response instead of a (P × pairs × d) feature array."""
        stacked = np.asarray(vectors, dtype=np.float64)
        p_count, k, d = stacked.shape
        reward = (unit(stacked.reshape(p_count * k, d)) @ self.weights).reshape(p_count, k)
        return sigmoid(reward[:, np.asarray(i)] - reward[:, np.asarray(j)])


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold probabilities of a beating b (one per comparison), their accuracy and mean log-loss."""

    probabilities: FloatArray
    accuracy: float
    log_loss: float
    folds: int


def sigmoid(z: FloatArray) -> FloatArray:
    """σ(z), stable for large |z|."""
    out: FloatArray = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def unit(vectors: npt.ArrayLike) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero)."""
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    scaled: FloatArray = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    return scaled


def features(
    response_a: npt.ArrayLike, response_b: npt.ArrayLike, prompt: npt.ArrayLike | None = None
) -> FloatArray:
    """Comparison features per row: φ(a) − φ(b), and with a prompt also (φ(a) − φ(b)) ⊙ prompt."""
    diff = unit(response_a) - unit(response_b)
    if prompt is None:
        return diff
    return np.hstack([diff, diff * unit(prompt)])


def fit(
    x: npt.ArrayLike,
    a_won: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    l2: float = DEFAULT_L2,
    features_kind: str = "diff",
) -> RewardModel:
    """Weighted L2-regularised logistic regression without intercept, by Newton's method.

    Minimises Σ wᵢ·logloss(yᵢ, σ(xᵢ·θ)) + (l2 / 2)·|θ|². With l2 > 0 the minimum is unique, also for
    separable data or fewer comparisons than features.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(a_won, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(y) or len(w) != len(y):
        raise ValueError("x must be (n, d) with one label and one weight per row")
    if l2 <= 0:
        raise ValueError("l2 must be positive")
    theta = np.zeros(x.shape[1])
    for _ in range(_MAX_NEWTON_STEPS):
        p = sigmoid(x @ theta)
        gradient = x.T @ (w * (p - y)) + l2 * theta
        curvature = w * p * (1.0 - p)
        hessian = (x.T * curvature) @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if float(np.max(np.abs(step), initial=0.0)) < _TOLERANCE:
            break
    return RewardModel(theta, features_kind)


def log_loss(a_won: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Mean negative log-likelihood of the outcomes."""
    y = np.asarray(a_won, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _CLIP, 1.0 - _CLIP)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


def accuracy(a_won: npt.ArrayLike, probabilities: npt.ArrayLike) -> float:
    """Share of comparisons whose more probable winner is the recorded one (p = 0.5 counts as wrong)."""
    y = np.asarray(a_won, dtype=bool)
    p = np.asarray(probabilities, dtype=np.float64)
    return float(np.mean(np.where(y, p > 0.5, p < 0.5)))


def fold_of(n: int, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Each comparison's fold, balanced and shuffled by a seed (the same on every machine)."""
    order = np.random.default_rng(seed).permutation(n)
    assigned = np.empty(n, dtype=np.int64)
    assigned[order] = np.arange(n) % folds
    return assigned


def cross_validate(
    x: npt.ArrayLike,
    a_won: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    *,
    folds: int = 5,
    l2: float = DEFAULT_L2,
    seed: int = 0,
) -> CrossValidation:
    """k-fold out-of-fold probabilities (each comparison predicted by a model fitted without it)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(a_won, dtype=np.float64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    folds = max(2, min(folds, len(y)))
    if len(y) < 2:
        raise ValueError("cross-validation needs at least two comparisons")
    assigned = fold_of(len(y), folds, seed)
    oof = np.empty(len(y))
    for k in range(folds):
        held = assigned == k
        model = fit(x[~held], y[~held], w[~held], l2=l2)
        oof[held] = model.probability(x[held])
    return CrossValidation(oof, accuracy(y, oof), log_loss(y, oof), folds)
