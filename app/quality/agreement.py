"""Inter-annotator agreement for categorical labels: plain Python in, numbers out, no database and no HTTP.

A label is ``(item, annotator, category)``: ``item`` a hashable pair id, ``annotator`` a string, ``category``
one of a fixed ordered tuple (``CATEGORIES`` for preference pairs, where "a" / "b" name the pair's canonical
response_a / response_b, never a screen position). The statistics take their categories from the data: a
category nobody used changes none of them.

Each (item, annotator) labels at most once. A repeat raises ``ValueError``: it means the caller passed a
withdrawn or superseded label, which would otherwise count twice without anyone noticing.

References: Krippendorff (2011) "Computing Krippendorff's Alpha-Reliability"; Fleiss (1971) "Measuring
nominal scale agreement among many raters"; Cohen (1960) "A coefficient of agreement for nominal scales".
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.labels import outcome

CATEGORIES: tuple[str, ...] = outcome.SIDES

Label = tuple[Hashable, str, str]

# p_e this close to 1 means both sides (nearly) always used one category: kappa is 0 / 0 there.
_CHANCE_EPSILON = 1e-12


@dataclass(frozen=True)
class FleissResult:
    """Fleiss' kappa over the ``items`` rated exactly ``raters`` times; ``items_left_out`` were not."""

    kappa: float | None
    raters: int
    items: int
    items_left_out: int


@dataclass(frozen=True)
class CohenResult:
    """Cohen's kappa for one annotator pair and the number of items both labelled."""

    kappa: float | None
    items: int


def labels_by_item(labels: Iterable[Label]) -> dict[Hashable, dict[str, str]]:
    """Labels grouped item → annotator → category in first-seen order; a repeated (item, annotator) raises."""
    grouped: dict[Hashable, dict[str, str]] = {}
    for item, annotator, category in labels:
        per_item = grouped.setdefault(item, {})
        if annotator in per_item:
            raise ValueError(f"annotator {annotator!r} labelled item {item!r} more than once")
        per_item[annotator] = category
    return grouped


def krippendorff_alpha_nominal(labels: Iterable[Label]) -> float | None:
    """Krippendorff's alpha for nominal data from the coincidence matrix; None where it is undefined."""
    # A unit with one value has nothing to pair it with, so it carries no information about agreement.
    units = [list(per_item.values()) for per_item in labels_by_item(labels).values() if len(per_item) >= 2]
    values = sorted({category for unit in units for category in unit})
    if not values:
        return None
    index = {value: k for k, value in enumerate(values)}
    counts = np.zeros((len(units), len(values)))
    for u, unit in enumerate(units):
        for category in unit:
            counts[u, index[category]] += 1
    pairable = counts.sum(axis=1)
    # Every value in a unit of m_u values pairs with the m_u - 1 others; weighting by 1 / (m_u - 1) makes each
    # pairable value contribute exactly one to the coincidence matrix, whatever the unit size.
    weighted = counts / (pairable - 1)[:, None]
    coincidence = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    n_c = counts.sum(axis=0)  # integer-valued: keeps the "expected is 0" test below exact
    n = n_c.sum()
    expected = n * n - float(n_c @ n_c)
    if expected == 0:
        return None
    observed = coincidence.sum() - np.trace(coincidence)
    return float(1.0 - (n - 1) * observed / expected)


def fleiss_kappa(labels: Iterable[Label]) -> FleissResult:
    """Fleiss' kappa over the items with the modal number n ≥ 2 of ratings; other items are left out."""
    by_item = labels_by_item(labels)
    sizes = Counter(len(per_item) for per_item in by_item.values() if len(per_item) >= 2)
    if not sizes:
        return FleissResult(kappa=None, raters=0, items=0, items_left_out=len(by_item))
    # Fleiss' kappa needs the same n for every item. The modal n keeps the most items; on a tie the larger n
    # wins because each of its items says more about agreement.
    raters = max(sizes, key=lambda size: (sizes[size], size))
    rows = [list(per_item.values()) for per_item in by_item.values() if len(per_item) == raters]
    values = sorted({category for row in rows for category in row})
    index = {value: k for k, value in enumerate(values)}
    table = np.zeros((len(rows), len(values)))
    for i, row in enumerate(rows):
        for category in row:
            table[i, index[category]] += 1
    n_items = len(rows)
    p_j = table.sum(axis=0) / (n_items * raters)
    p_i = ((table * table).sum(axis=1) - raters) / (raters * (raters - 1))
    p_bar = float(p_i.mean())
    p_e = float(p_j @ p_j)
    kappa = None if 1.0 - p_e <= _CHANCE_EPSILON else (p_bar - p_e) / (1.0 - p_e)
    return FleissResult(kappa=kappa, raters=raters, items=n_items, items_left_out=len(by_item) - n_items)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa for two annotators' labels on the same items (a[k] and b[k]); None where undefined."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa needs labels for the same items: got {len(a)} and {len(b)}")
    if not a:
        return None
    values = sorted(set(a) | set(b))
    index = {value: k for k, value in enumerate(values)}
    table = np.zeros((len(values), len(values)))
    np.add.at(table, ([index[x] for x in a], [index[y] for y in b]), 1.0)
    table /= len(a)
    p_o = float(np.trace(table))
    p_e = float(table.sum(axis=1) @ table.sum(axis=0))
    if 1.0 - p_e <= _CHANCE_EPSILON:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def pairwise_cohen(labels: Iterable[Label]) -> dict[tuple[str, str], CohenResult]:
    """Cohen's kappa for every annotator pair (sorted names, sorted keys) sharing at least 2 items."""
    shared: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for per_item in labels_by_item(labels).values():
        for first, second in itertools.combinations(sorted(per_item), 2):
            first_labels, second_labels = shared.setdefault((first, second), ([], []))
            first_labels.append(per_item[first])
            second_labels.append(per_item[second])
    return {
        pair: CohenResult(kappa=cohen_kappa(first_labels, second_labels), items=len(first_labels))
        for pair, (first_labels, second_labels) in sorted(shared.items())
        if len(first_labels) >= 2
    }


def agreement_with_majority(labels: Iterable[Label]) -> dict[str, float | None]:
    """Each annotator's share of labels equal to what the others' labels decide on that item, by the pair
    outcome rule (app/labels/outcome.py), over the items where they decide something (sorted by name)."""
    by_item = labels_by_item(labels)
    hits: Counter[str] = Counter()
    counted: Counter[str] = Counter()
    annotators: set[str] = set()
    for per_item in by_item.values():
        annotators.update(per_item)
        if len(per_item) < 2:
            continue
        for annotator, category in per_item.items():
            # Leave-one-out: with the annotator's own vote included they would help form the majority they are
            # scored against (with 3 labels, any vote agreeing with one other is "in the majority"), inflating
            # every score and most of all that of a careless annotator on small overlaps.
            others = outcome.result_of(outcome.count(o for name, o in per_item.items() if name != annotator))
            if others is None:
                continue
            counted[annotator] += 1
            hits[annotator] += category == others
    return {
        annotator: (hits[annotator] / counted[annotator] if counted[annotator] else None)
        for annotator in sorted(annotators)
    }
