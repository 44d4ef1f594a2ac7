"""Dawid–Skene EM on synthetic crowds, hand-made examples and a Bayes-rule reference."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from app.quality.agreement import CATEGORIES, Label
from app.quality.dawid_skene import DawidSkene, dawid_skene

GOOD = ("good1", "good2", "good3")
SPAM = ("spam1", "spam2")


def synthetic_crowd(seed: int, n_items: int = 300) -> tuple[dict[int, str], list[Label]]:
    """Each item labelled by 3 of 5 annotators: good ones 90% correct, spammers uniformly random."""
    rng = np.random.default_rng(seed)
    truth = {item: CATEGORIES[rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])] for item in range(n_items)}
    labels: list[Label] = []
    for item, true in truth.items():
        for annotator in rng.choice(GOOD + SPAM, size=3, replace=False):
            if annotator in GOOD:
                wrong = [c for c in CATEGORIES if c != true]
                category = true if rng.random() < 0.9 else wrong[rng.integers(len(wrong))]
            else:
                category = CATEGORIES[rng.integers(len(CATEGORIES))]
            labels.append((item, str(annotator), category))
    return truth, labels


def plurality(votes: list[str]) -> list[str]:
    """The categories with the most votes (several on a tie for first place): plain majority vote."""
    counts = Counter(votes)
    top = max(counts.values())
    return [category for category, n in counts.items() if n == top]


def majority_accuracy(truth: dict[int, str], labels: list[Label]) -> float:
    """Expected accuracy of majority vote when ties are broken uniformly at random (its best fair showing)."""
    votes: dict[int, list[str]] = {}
    for item, _, category in labels:
        votes.setdefault(item, []).append(category)
    score = 0.0
    for item, true in truth.items():
        leaders = plurality(votes[item])
        score += (true in leaders) / len(leaders)
    return score / len(truth)


def assert_finite(result: DawidSkene) -> None:
    numbers = [p for post in result.posteriors.values() for p in post.values()]
    numbers += list(result.priors.values()) + list(result.reliability.values())
    numbers += [x for matrix in result.confusion.values() for row in matrix for x in row]
    assert all(math.isfinite(x) for x in numbers)


def assert_stochastic(result: DawidSkene) -> None:
    for post in result.posteriors.values():
        assert sum(post.values()) == pytest.approx(1.0)
    assert sum(result.priors.values()) == pytest.approx(1.0)
    for matrix in result.confusion.values():
        for row in matrix:
            assert sum(row) == pytest.approx(1.0)
            assert min(row) > 0


class TestSyntheticCrowd:
    def test_beats_majority_vote_and_finds_the_spammers(self) -> None:
        truth, labels = synthetic_crowd(seed=0)
        result = dawid_skene(labels, CATEGORIES)
        ds_accuracy = sum(result.predicted(item) == true for item, true in truth.items()) / len(truth)
        mv_accuracy = majority_accuracy(truth, labels)
        assert ds_accuracy > mv_accuracy + 0.05
        assert ds_accuracy >= 0.85
        assert max(result.reliability[s] for s in SPAM) < min(result.reliability[g] for g in GOOD)
        # A uniform spammer is right a quarter of the time whatever the truth; good annotators ~90%.
        for spammer in SPAM:
            assert result.reliability[spammer] == pytest.approx(0.25, abs=0.1)
        for good in GOOD:
            assert result.reliability[good] == pytest.approx(0.9, abs=0.1)
        assert_finite(result)
        assert_stochastic(result)


class TestAllAgree:
    def test_posteriors_one_hot_and_reliability_one(self) -> None:
        truth = [CATEGORIES[item % 4] for item in range(40)]
        labels = [(item, name, true) for item, true in enumerate(truth) for name in ("x", "y", "z")]
        result = dawid_skene(labels, CATEGORIES)
        assert result.converged
        for item, true in enumerate(truth):
            assert result.posteriors[item][true] > 0.999
            assert result.predicted(item) == true
        for name in ("x", "y", "z"):
            # Smoothing keeps θ_kk just under 1: (10 + 0.01) / (10 + 4 · 0.01) with 10 items per class.
            assert result.reliability[name] == pytest.approx(1.0, abs=5e-3)
        assert_stochastic(result)


class TestDeterminism:
    def test_same_input_same_output_and_order(self) -> None:
        _, labels = synthetic_crowd(seed=1, n_items=120)
        first = dawid_skene(labels, CATEGORIES)
        second = dawid_skene(list(labels), CATEGORIES)
        assert first == second
        assert list(first.posteriors) == list(second.posteriors) == sorted({item for item, _, _ in labels})
        assert list(first.confusion) == list(first.reliability) == sorted(GOOD + SPAM)
        assert list(first.priors) == list(CATEGORIES)

    def test_label_order_does_not_change_the_estimates(self) -> None:
        _, labels = synthetic_crowd(seed=2, n_items=120)
        shuffled = [labels[k] for k in np.random.default_rng(0).permutation(len(labels))]
        a = dawid_skene(labels, CATEGORIES)
        b = dawid_skene(shuffled, CATEGORIES)
        for item, post in a.posteriors.items():
            assert b.posteriors[item] == pytest.approx(post, abs=1e-9)
        assert b.reliability == pytest.approx(a.reliability, abs=1e-9)


class TestSingleLabelPerItem:
    def test_posterior_is_the_smoothed_prior_weighted_likelihood(self) -> None:
        # With no overlap at all the model is unidentified (EM drifts towards the commonest category), so
        # only the shape of the answer is checked here; the next test covers the informative case.
        given = ["a", "a", "b", "tie", "a", "both_bad", "b", "a"]
        labels = [(item, f"ann{item % 3}", category) for item, category in enumerate(given)]
        result = dawid_skene(labels, CATEGORIES)
        assert_finite(result)
        assert_stochastic(result)
        for item, category in enumerate(given):
            theta = np.array(result.confusion[f"ann{item % 3}"])
            prior = np.array([result.priors[c] for c in CATEGORIES])
            expected = prior * theta[:, CATEGORIES.index(category)]
            expected /= expected.sum()
            assert [result.posteriors[item][c] for c in CATEGORIES] == pytest.approx(expected.tolist())

    def test_lone_labels_among_overlapping_ones_follow_a_reliable_annotator(self) -> None:
        truth, labels = synthetic_crowd(seed=5)
        lone = {1000 + k: CATEGORIES[k % 4] for k in range(20)}
        result = dawid_skene(labels + [(item, "good1", given) for item, given in lone.items()], CATEGORIES)
        assert_finite(result)
        for item, given in lone.items():
            assert result.predicted(item) == given
            # Smoothing and good1's ~10% error rate soften the lone label.
            assert 0.5 < result.posteriors[item][given] < 1.0

    def test_one_label_in_total(self) -> None:
        result = dawid_skene([("only", "ann", "tie")], CATEGORIES)
        assert result.predicted("only") == "tie"
        assert_finite(result)
        assert_stochastic(result)


class TestPosteriorsFollowBayesRule:
    def test_matches_brute_force_product(self) -> None:
        _, labels = synthetic_crowd(seed=3, n_items=60)
        result = dawid_skene(labels, CATEGORIES)
        for item in range(60):
            weights = [result.priors[c] for c in CATEGORIES]
            for other, annotator, category in labels:
                if other == item:
                    given = CATEGORIES.index(category)
                    weights = [w * result.confusion[annotator][k][given] for k, w in enumerate(weights)]
            total = sum(weights)
            expected = {c: w / total for c, w in zip(CATEGORIES, weights, strict=True)}
            assert result.posteriors[item] == pytest.approx(expected, abs=1e-12)


class TestFlippedAnnotator:
    def test_learns_the_inverted_confusion_matrix(self) -> None:
        categories = ("yes", "no")
        truth = ["yes", "no"] * 6
        flip = {"yes": "no", "no": "yes"}
        # Each honest annotator errs once, on a different item; "contrarian" always answers the opposite.
        # On those three items the four votes tie 2–2, so majority vote cannot decide them.
        mistakes = {"h1": 0, "h2": 5, "h3": 10}
        labels: list[Label] = []
        for item, true in enumerate(truth):
            for honest, wrong_item in mistakes.items():
                labels.append((item, honest, flip[true] if item == wrong_item else true))
            labels.append((item, "contrarian", flip[true]))
        assert all(len(plurality([c for i, _, c in labels if i == item])) > 1 for item in mistakes.values())

        result = dawid_skene(labels, categories)
        contrarian = result.confusion["contrarian"]
        assert contrarian[0][1] > 0.95  # truth yes → says no
        assert contrarian[1][0] > 0.95  # truth no → says yes
        assert result.reliability["contrarian"] < 0.05
        assert all(result.reliability[h] > 0.8 for h in mistakes)
        # Its inverted votes now count as evidence, breaking the ties majority vote could not.
        assert [result.predicted(item) for item in range(len(truth))] == truth


class TestPredicted:
    def test_tie_goes_to_the_earlier_category(self) -> None:
        result = DawidSkene(
            categories=CATEGORIES,
            posteriors={"p": {"a": 0.1, "b": 0.4, "tie": 0.4, "both_bad": 0.1}},
            priors=dict.fromkeys(CATEGORIES, 0.25),
            confusion={},
            reliability={},
            iterations=1,
            converged=True,
        )
        assert result.predicted("p") == "b"


class TestInputs:
    def test_empty_labels(self) -> None:
        result = dawid_skene([], CATEGORIES)
        assert result.posteriors == {}
        assert result.priors == dict.fromkeys(CATEGORIES, 0.25)
        assert (result.iterations, result.converged) == (0, True)

    def test_any_category_tuple(self) -> None:
        labels = [(i, n, ("x", "y", "z")[i % 3]) for i in range(9) for n in ("p", "q")]
        result = dawid_skene(labels, ("x", "y", "z"))
        assert [result.predicted(i) for i in range(9)] == [("x", "y", "z")[i % 3] for i in range(9)]

    def test_unknown_category_raises(self) -> None:
        with pytest.raises(ValueError, match="unknown category"):
            dawid_skene([(1, "ann", "maybe")], CATEGORIES)

    def test_repeated_item_and_annotator_raises(self) -> None:
        with pytest.raises(ValueError, match="more than once"):
            dawid_skene([(1, "ann", "a"), (1, "ann", "b")], CATEGORIES)

    @pytest.mark.parametrize(
        ("categories", "kwargs", "message"),
        [
            (("a",), {}, "at least two distinct"),
            (("a", "a"), {}, "at least two distinct"),
            (CATEGORIES, {"max_iter": 0}, "max_iter"),
            (CATEGORIES, {"smoothing": 0.0}, "smoothing"),
        ],
    )
    def test_bad_arguments_raise(
        self, categories: tuple[str, ...], kwargs: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(ValueError, match=message):
            dawid_skene([(1, "ann", "a")], categories, **kwargs)

    def test_stops_at_max_iter(self) -> None:
        _, labels = synthetic_crowd(seed=4, n_items=50)
        result = dawid_skene(labels, CATEGORIES, max_iter=2, tol=0.0)
        assert (result.iterations, result.converged) == (2, False)
