"""The `active` strategy's priority of a candidate pair: pure numpy, used by the service and the simulator.

    priority = (1 − cos(a, b)) · (1 − λᵤ + λᵤ · u) · (1 − λᵥ + λᵥ · v)

- ``1 − cos(a, b)``: REAL's dissimilarity, the `dissimilar` strategy's own priority (easy pairs first).
- ``u = 1 − |2p − 1|``: the reward model's uncertainty on the pair (p = P(a beats b)): 1 at p = 0.5, 0 when
  the model is sure. A label on a pair the model already predicts teaches it little.
- ``v = 1 − max similarity`` of the pair's two responses to the responses of already labelled pairs (the
  larger of the two maxima, clipped to [0, 1]): 1 for responses unlike anything labelled, 0 for a response
  labelled before (a near-duplicate teaches little).
- ``λᵤ``, ``λᵥ`` in [0, 1] (defaults 0.5 each): how far uncertainty and novelty may scale the priority
  down. With λ = 0.5 a pair the model is sure about keeps half its REAL priority.

With no model yet (``p`` None) u counts as 1, and with nothing labelled yet v counts as 1: the priority is
then exactly `dissimilar`'s.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

UNCERTAINTY_WEIGHT = 0.5
NOVELTY_WEIGHT = 0.5


def uncertainty(probability: npt.ArrayLike) -> FloatArray:
    """1 − |2p − 1|: 1 where the model is undecided, 0 where it is sure."""
    p = np.asarray(probability, dtype=np.float64)
    out: FloatArray = 1.0 - np.abs(2.0 * p - 1.0)
    return out


def novelty(similarity_a: npt.ArrayLike, similarity_b: npt.ArrayLike) -> FloatArray:
    """1 − the larger of the two responses' highest similarity to labelled responses, in [0, 1]."""
    nearest = np.maximum(
        np.asarray(similarity_a, dtype=np.float64), np.asarray(similarity_b, dtype=np.float64)
    )
    out: FloatArray = np.clip(1.0 - nearest, 0.0, 1.0)
    return out


def priority(
    similarity: npt.ArrayLike,
    probability: npt.ArrayLike | None = None,
    labelled_similarity_a: npt.ArrayLike | None = None,
    labelled_similarity_b: npt.ArrayLike | None = None,
    *,
    uncertainty_weight: float = UNCERTAINTY_WEIGHT,
    novelty_weight: float = NOVELTY_WEIGHT,
) -> FloatArray:
    """The `active` priority of candidate pairs (see the module docstring); higher is handed out first."""
    base = 1.0 - np.asarray(similarity, dtype=np.float64)
    u = np.ones_like(base) if probability is None else uncertainty(probability)
    if labelled_similarity_a is None or labelled_similarity_b is None:
        v = np.ones_like(base)
    else:
        v = novelty(labelled_similarity_a, labelled_similarity_b)
    out: FloatArray = base * (1.0 - uncertainty_weight + uncertainty_weight * u)
    out *= 1.0 - novelty_weight + novelty_weight * v
    return out
