"""Agreement statistics against textbook worked examples and brute-force references."""

from __future__ import annotations

import itertools
from collections.abc import Hashable

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from app.quality.agreement import (
    CATEGORIES,
    CohenResult,
    Label,
    agreement_with_majority,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    labels_by_item,
    pairwise_cohen,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders × 12 units,
# nominal values 1–5, None where a coder left the unit out. Unit 12 has one value and is not pairable.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}

# Fleiss (1971) as worked on Wikipedia ("Fleiss' kappa", worked example): 10 subjects, 14 raters each,
# counts per category 1–5.
FLEISS_TABLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def coder_table_labels(table: dict[str, list[int | None]]) -> list[Label]:
    return [
        (unit, coder, str(value))
        for coder, values in table.items()
        for unit, value in enumerate(values, start=1)
        if value is not None
    ]


def count_table_labels(table: list[list[int]]) -> list[Label]:
    """Labels reproducing a subjects × categories count table (raters named r0, r1, … per subject)."""
    labels: list[Label] = []
    for subject, row in enumerate(table):
        values = [str(category) for category, count in enumerate(row, start=1) for _ in range(count)]
        labels += [(subject, f"r{rater}", value) for rater, value in enumerate(values)]
    return labels


def random_labels(rng: np.random.Generator, n_items: int, n_annotators: int, p_missing: float) -> list[Label]:
    labels: list[Label] = []
    for item in range(n_items):
        truth = rng.integers(len(CATEGORIES))
        for annotator in range(n_annotators):
            if rng.random() < p_missing:
                continue
            category = truth if rng.random() < 0.6 else rng.integers(len(CATEGORIES))
            labels.append((item, f"ann{annotator}", CATEGORIES[category]))
    return labels


def brute_force_alpha(labels: list[Label]) -> float:
    """Alpha = 1 - D_o / D_e from the pairwise definitions, looping over ordered pairs of values."""
    units = [list(v.values()) for v in labels_by_item(labels).values() if len(v) >= 2]
    pooled = [value for unit in units for value in unit]
    n = len(pooled)
    d_o = sum(sum(x != y for x, y in itertools.permutations(unit, 2)) / (len(unit) - 1) for unit in units) / n
    d_e = sum(x != y for x, y in itertools.permutations(pooled, 2)) / (n * (n - 1))
    return 1.0 - d_o / d_e


class TestLabelsByItem:
    def test_repeat_of_item_and_annotator_raises(self) -> None:
        with pytest.raises(ValueError, match="more than once"):
            labels_by_item([(1, "ann", "a"), (1, "ann", "b")])


class TestKrippendorffAlphaNominal:
    def test_krippendorff_2011_example(self) -> None:
        alpha = krippendorff_alpha_nominal(coder_table_labels(KRIPPENDORFF_2011))
        assert alpha == pytest.approx(0.743, abs=5e-4)

    def test_matches_pairwise_definition(self) -> None:
        rng = np.random.default_rng(7)
        for _ in range(20):
            labels = random_labels(rng, n_items=25, n_annotators=5, p_missing=0.4)
            assert krippendorff_alpha_nominal(labels) == pytest.approx(brute_force_alpha(labels), abs=1e-12)

    def test_single_label_units_are_ignored(self) -> None:
        labels = coder_table_labels(KRIPPENDORFF_2011)
        extra = [(100 + k, "A", str(k % 5 + 1)) for k in range(10)]
        assert krippendorff_alpha_nominal(labels + extra) == krippendorff_alpha_nominal(labels)

    def test_perfect_agreement_is_one(self) -> None:
        labels = [(item, coder, "ab"[item % 2]) for item in range(6) for coder in ("x", "y", "z")]
        assert krippendorff_alpha_nominal(labels) == pytest.approx(1.0)

    def test_undefined_without_pairable_values(self) -> None:
        assert krippendorff_alpha_nominal([]) is None
        assert krippendorff_alpha_nominal([(1, "x", "a"), (2, "x", "b")]) is None

    def test_undefined_when_one_value_only(self) -> None:
        assert krippendorff_alpha_nominal([(item, coder, "a") for item in range(3) for coder in "xy"]) is None


class TestFleissKappa:
    def test_wikipedia_worked_example(self) -> None:
        result = fleiss_kappa(count_table_labels(FLEISS_TABLE))
        assert result.kappa == pytest.approx(0.210, abs=5e-4)
        assert (result.raters, result.items, result.items_left_out) == (14, 10, 0)

    def test_items_with_another_number_of_ratings_are_left_out(self) -> None:
        labels = count_table_labels(FLEISS_TABLE)
        extra = [("odd", "r0", "1"), ("odd", "r1", "5"), ("single", "r0", "3")]
        result = fleiss_kappa(labels + extra)
        assert result.kappa == fleiss_kappa(labels).kappa
        assert (result.raters, result.items, result.items_left_out) == (14, 10, 2)

    def test_modal_count_tie_takes_the_larger_count(self) -> None:
        labels = [(1, "x", "a"), (1, "y", "a"), (2, "x", "a"), (2, "y", "b"), (2, "z", "b")]
        result = fleiss_kappa(labels)
        assert (result.raters, result.items, result.items_left_out) == (3, 1, 1)

    def test_undefined_when_everyone_uses_one_category(self) -> None:
        result = fleiss_kappa([(item, rater, "a") for item in range(4) for rater in "xyz"])
        assert result.kappa is None
        assert result.items == 4

    def test_undefined_without_multiply_rated_items(self) -> None:
        result = fleiss_kappa([(1, "x", "a"), (2, "y", "b")])
        assert result.kappa is None
        assert (result.raters, result.items, result.items_left_out) == (0, 0, 2)


class TestCohenKappa:
    def test_wikipedia_example(self) -> None:
        # 50 proposals: both yes 20, A yes / B no 5, A no / B yes 10, both no 15 → p_o 0.7, p_e 0.5.
        pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
        a, b = zip(*pairs, strict=True)
        assert cohen_kappa(a, b) == pytest.approx(0.4)

    def test_matches_scikit_learn(self) -> None:
        rng = np.random.default_rng(3)
        for _ in range(20):
            a = [CATEGORIES[k] for k in rng.integers(4, size=40)]
            b = [x if rng.random() < 0.5 else CATEGORIES[rng.integers(4)] for x in a]
            assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)

    def test_perfect_agreement_is_one(self) -> None:
        assert cohen_kappa(["a", "b", "tie", "a"], ["a", "b", "tie", "a"]) == pytest.approx(1.0)

    def test_chance_agreement_is_zero(self) -> None:
        assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)

    def test_undefined_when_chance_agreement_is_certain(self) -> None:
        assert cohen_kappa(["a", "a", "a"], ["a", "a", "a"]) is None

    def test_undefined_without_items(self) -> None:
        assert cohen_kappa([], []) is None

    def test_lengths_must_match(self) -> None:
        with pytest.raises(ValueError, match="same items"):
            cohen_kappa(["a"], ["a", "b"])


class TestPairwiseCohen:
    def test_pairs_sorted_with_shared_counts(self) -> None:
        labels: list[tuple[Hashable, str, str]] = [
            (1, "zed", "a"), (1, "amy", "a"), (1, "bob", "b"),
            (2, "zed", "b"), (2, "amy", "b"), (2, "bob", "b"),
            (3, "zed", "a"), (3, "amy", "b"),
        ]  # fmt: skip
        result = pairwise_cohen(labels)
        assert list(result) == [("amy", "bob"), ("amy", "zed"), ("bob", "zed")]
        assert result[("amy", "zed")].items == 3
        assert result[("amy", "zed")].kappa == pytest.approx(cohen_kappa(["a", "b", "b"], ["a", "b", "a"]))
        assert result[("amy", "bob")] == CohenResult(kappa=cohen_kappa(["a", "b"], ["b", "b"]), items=2)

    def test_pairs_sharing_fewer_than_two_items_are_omitted(self) -> None:
        labels = [(1, "x", "a"), (1, "y", "a"), (2, "x", "b"), (2, "y", "a"), (3, "x", "a"), (3, "z", "a")]
        assert list(pairwise_cohen(labels)) == [("x", "y")]


class TestAgreementWithMajority:
    def test_leave_one_out_hand_example(self) -> None:
        labels = [
            # Item 1: for each annotator the other two agree with each other.
            (1, "ann", "a"), (1, "bob", "a"), (1, "cat", "b"),
            # Item 2: two labels, so each is scored against the other one.
            (2, "ann", "tie"), (2, "bob", "b"),
            # Item 3: all agree.
            (3, "ann", "a"), (3, "bob", "a"), (3, "cat", "a"),
            # Item 4: a lone label has no one to agree with.
            (4, "dan", "b"),
        ]  # fmt: skip
        # ann: item 1 vs {a, b} tied → skipped; item 2 vs b → miss; item 3 vs a → hit: 1 / 2.
        # bob: item 1 tied → skipped; item 2 vs tie → miss; item 3 → hit: 1 / 2.
        # cat: item 1 vs {a, a} → miss; item 3 → hit: 1 / 2.
        assert agreement_with_majority(labels) == {"ann": 0.5, "bob": 0.5, "cat": 0.5, "dan": None}

    def test_own_vote_does_not_count(self) -> None:
        # With the own vote included, "cat" would form a 2–2 tie on item 1 and never be scored against it;
        # leave-one-out scores cat against the other three's clear "a".
        labels = [(1, "ann", "a"), (1, "bob", "a"), (1, "dan", "b"), (1, "cat", "b"),
                  (2, "ann", "a"), (2, "bob", "a"), (2, "cat", "a")]  # fmt: skip
        result = agreement_with_majority(labels)
        assert result["cat"] == pytest.approx(0.5)
        assert result["dan"] == pytest.approx(0.0)
        assert list(result) == ["ann", "bob", "cat", "dan"]
