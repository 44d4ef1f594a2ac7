"""The `active` priority, without a database."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.active.acquisition import novelty, priority, uncertainty

similarities = st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20)


@given(similarities)
def test_with_no_model_and_nothing_labelled_it_is_exactly_dissimilar(values: list[float]) -> None:
    assert np.array_equal(priority(values), 1.0 - np.asarray(values))


def test_uncertain_pairs_come_before_sure_ones_of_the_same_dissimilarity() -> None:
    order = priority([0.2, 0.2, 0.2], [0.5, 0.9, 0.99])
    assert order[0] > order[1] > order[2]
    assert order[2] == pytest.approx(0.8 * (0.5 + 0.5 * 0.02))


def test_novel_pairs_come_before_pairs_like_labelled_ones() -> None:
    order = priority([0.2, 0.2], None, [0.1, 0.95], [0.3, 0.2])
    assert order[0] > order[1]
    assert novelty([1.0], [0.2]).tolist() == [0.0]


def test_weights_zero_turn_each_term_off() -> None:
    assert priority([0.5], [0.99], [1.0], [1.0], uncertainty_weight=0.0, novelty_weight=0.0).tolist() == [0.5]


def test_uncertainty_is_symmetric_in_the_pair_order() -> None:
    p = np.linspace(0, 1, 11)
    assert np.allclose(uncertainty(p), uncertainty(1 - p))
