"""Dawid–Skene (1979) EM over categorical labels: each annotator's confusion matrix, each item's posterior.

Model: item i has a hidden true category k drawn from the priors π; annotator j, shown an item whose truth is
k, answers l with probability θ[j][k][l]. EM alternates the E-step, T[i][k] ∝ π_k · Π θ[j][k][l_ij] over the
item's labels, with the M-step, π and θ re-estimated from T. Unlike a majority vote it learns who to trust:
a spammer's votes are discounted and a consistently inverted annotator becomes informative.

An item labelled once is informative only through its annotator's confusion matrix, which is learned on the
items that annotator shares with others. With no overlap at all the model is unidentified (EM drifts towards
the commonest category), so read these estimates only where labels overlap (annotations_per_pair ≥ 2).

Labels are ``(item, annotator, category)`` as in ``app.quality.agreement``. Everything runs on arrays
(items × categories, annotators × categories × categories), so 100k labels take a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.quality.agreement import Label, labels_by_item

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class DawidSkene:
    """Item posteriors, class priors, confusion matrices θ[true][given], expected accuracy per annotator."""

    categories: tuple[str, ...]
    posteriors: dict[Hashable, dict[str, float]]
    priors: dict[str, float]
    confusion: dict[str, list[list[float]]]
    reliability: dict[str, float]
    iterations: int
    converged: bool

    def predicted(self, item: Hashable) -> str:
        """The item's most probable category; a tie goes to the earlier category."""
        posterior = self.posteriors[item]
        best = self.categories[0]
        for category in self.categories[1:]:
            if posterior[category] > posterior[best]:
                best = category
        return best


@dataclass(frozen=True)
class _Encoded:
    """Labels as parallel index arrays plus the names the indices stand for."""

    items: list[Hashable]
    annotators: list[str]
    item: IntArray
    annotator: IntArray
    category: IntArray


def dawid_skene(
    labels: Iterable[Label],
    categories: Sequence[str],
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkene:
    """Fit Dawid–Skene by EM, starting from per-item vote shares; stops when no posterior moves by ≥ tol."""
    cats = tuple(categories)
    if len(cats) < 2 or len(set(cats)) != len(cats):
        raise ValueError(f"categories must be at least two distinct names, got {cats!r}")
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1")
    if smoothing <= 0:
        # Without it one unseen (true, given) cell is log(0) = -inf and an item can end with 0/0 posteriors.
        raise ValueError("smoothing must be positive")
    encoded = _encode(labels, cats)
    n_categories = len(cats)
    if not encoded.items:
        uniform = 1.0 / n_categories
        return DawidSkene(cats, {}, dict.fromkeys(cats, uniform), {}, {}, iterations=0, converged=True)

    n_items = len(encoded.items)
    posteriors, priors, confusion, iterations, converged = _fit(
        encoded, n_items, n_categories, max_iter=max_iter, tol=tol, smoothing=smoothing
    )
    reliability = (priors[None, :] * np.diagonal(confusion, axis1=1, axis2=2)).sum(axis=1)
    return DawidSkene(
        categories=cats,
        posteriors={
            item: dict(zip(cats, row, strict=True))
            for item, row in zip(encoded.items, posteriors.tolist(), strict=True)
        },
        priors=dict(zip(cats, priors.tolist(), strict=True)),
        confusion=dict(zip(encoded.annotators, confusion.tolist(), strict=True)),
        reliability=dict(zip(encoded.annotators, reliability.tolist(), strict=True)),
        iterations=iterations,
        converged=converged,
    )


def dawid_skene_posteriors(
    item: IntArray,
    annotator: IntArray,
    category: IntArray,
    *,
    n_items: int,
    n_annotators: int,
    n_categories: int,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> tuple[FloatArray, int, bool]:
    """The same EM on labels already encoded as index arrays: (posteriors (items × categories), iterations,
    converged). For callers that stream many labels and cannot afford a dict per item (exports).

    Every item index in ``range(n_items)`` must have at least one label. To match ``dawid_skene`` exactly,
    number items in first-seen order and annotators in sorted-name order, and pass labels item by item.
    """
    if n_items == 0:
        return np.empty((0, n_categories)), 0, True
    encoded = _Encoded(
        items=[],
        annotators=[""] * n_annotators,
        item=np.asarray(item, dtype=np.int64),
        annotator=np.asarray(annotator, dtype=np.int64),
        category=np.asarray(category, dtype=np.int64),
    )
    posteriors, _priors, _confusion, iterations, converged = _fit(
        encoded, n_items, n_categories, max_iter=max_iter, tol=tol, smoothing=smoothing
    )
    return posteriors, iterations, converged


def _fit(
    encoded: _Encoded, n_items: int, n_categories: int, *, max_iter: int, tol: float, smoothing: float
) -> tuple[FloatArray, FloatArray, FloatArray, int, bool]:
    """EM from the vote shares: (posteriors, priors, confusion, iterations, converged)."""
    votes = np.bincount(
        encoded.item * n_categories + encoded.category, minlength=n_items * n_categories
    ).reshape(n_items, n_categories)
    # Vote shares are a deterministic start close to the answer, and they pin each hidden class to the
    # category it is named after (a random start could converge to a relabelled solution).
    posteriors = votes / votes.sum(axis=1, keepdims=True)

    converged = False
    iterations = 0
    priors = confusion = np.empty(0)
    while not converged and iterations < max_iter:
        iterations += 1
        priors, confusion = _m_step(posteriors, encoded, n_categories, smoothing)
        # The returned posteriors always come from the returned priors and confusion (E-step last).
        updated = _e_step(priors, confusion, encoded, n_items)
        converged = float(np.abs(updated - posteriors).max()) < tol
        posteriors = updated
    return posteriors, priors, confusion, iterations, converged


def _encode(labels: Iterable[Label], categories: tuple[str, ...]) -> _Encoded:
    """Index arrays for the labels: items in first-seen order, annotators sorted by name."""
    by_item = labels_by_item(labels)
    category_index = {category: k for k, category in enumerate(categories)}
    annotators = sorted({annotator for per_item in by_item.values() for annotator in per_item})
    annotator_index = {annotator: j for j, annotator in enumerate(annotators)}
    item_idx: list[int] = []
    annotator_idx: list[int] = []
    category_idx: list[int] = []
    for i, per_item in enumerate(by_item.values()):
        for annotator, category in per_item.items():
            if category not in category_index:
                raise ValueError(f"unknown category {category!r}; expected one of {categories!r}")
            item_idx.append(i)
            annotator_idx.append(annotator_index[annotator])
            category_idx.append(category_index[category])
    return _Encoded(
        items=list(by_item),
        annotators=annotators,
        item=np.asarray(item_idx, dtype=np.int64),
        annotator=np.asarray(annotator_idx, dtype=np.int64),
        category=np.asarray(category_idx, dtype=np.int64),
    )


def _m_step(
    posteriors: FloatArray, encoded: _Encoded, n_categories: int, smoothing: float
) -> tuple[FloatArray, FloatArray]:
    """Priors π (K,) and confusion θ (J, K true, K given) from the posteriors, with additive smoothing."""
    n_items = posteriors.shape[0]
    priors = (posteriors.sum(axis=0) + smoothing) / (n_items + n_categories * smoothing)
    n_annotators = len(encoded.annotators)
    weights = posteriors[encoded.item]  # (L, K true): how much each label speaks for each true class
    cell = encoded.annotator * n_categories + encoded.category
    confusion = np.empty((n_annotators, n_categories, n_categories))
    # One bincount per true class keeps this O(L·K) without a Python loop over labels (K is tiny).
    for k in range(n_categories):
        confusion[:, k, :] = np.bincount(
            cell, weights=weights[:, k], minlength=n_annotators * n_categories
        ).reshape(n_annotators, n_categories)
    confusion += smoothing
    confusion /= confusion.sum(axis=2, keepdims=True)
    return priors, confusion


def _e_step(priors: FloatArray, confusion: FloatArray, encoded: _Encoded, n_items: int) -> FloatArray:
    """Item posteriors (I, K) given priors and confusion matrices, computed in log space."""
    n_categories = priors.shape[0]
    # Products over dozens of labels underflow in linear space; sums of logs do not.
    per_label = np.log(confusion)[encoded.annotator, :, encoded.category]  # (L, K true)
    log_post = np.tile(np.log(priors), (n_items, 1))
    for k in range(n_categories):
        log_post[:, k] += np.bincount(encoded.item, weights=per_label[:, k], minlength=n_items)
    log_post -= log_post.max(axis=1, keepdims=True)
    post: npt.NDArray[np.float64] = np.exp(log_post)
    post /= post.sum(axis=1, keepdims=True)
    return post
