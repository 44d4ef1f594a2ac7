"""Simulated annotators: the ground truth of a pair, and a noisy label drawn from it (pure numpy).

A pair (a, b) is decided when its two responses' scores differ (the higher wins) and a tie when they are
equal. An annotator labels every pair a or b, one label per pair:

- a decided pair gets the true winner, flipped with probability ε(s) (s: the pair's cosine similarity);
- a true tie gets a or b at random (a fair coin): it is a label spent, but no comparison the reward model
  can learn, and it counts neither as right nor as wrong.

Noise models give ε(s):

- ``constant``: ε(s) = ε for every pair (default ε = 0.1);
- ``similarity``: ε(s) = ε_min + (ε_max − ε_min) · clip((s − s_low) / (s_high − s_low), 0, 1), rising with
  the similarity of the two responses (REAL's premise: similar responses are harder to tell apart). Defaults
  ε_min = 0.05, ε_max = 0.40, and s_low, s_high the 5th and 95th percentiles of the cosines of all
  within-prompt pairs of the data (``resolved``): cosines depend on the embedding model and the data (with
  all-MiniLM-L6-v2 the median pair is at 0.80 on AlpacaEval and 0.29 on HH-RLHF), so fixed cosines would
  make one dataset's annotators far noisier than the other's. Explicit s_low, s_high override them.

The random draws come in as arrays (``flip_draws``, ``coin_draws``: uniform [0, 1)), so the caller decides
how they are seeded: the engine draws them per pair, so every strategy meets the same annotator on the same
pair within a repeat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from app.simulation.errors import ParameterError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

NoiseName = Literal["constant", "similarity"]
# The default similarity ramp runs between these percentiles of the data's within-prompt pair cosines.
RAMP_QUANTILES = (0.05, 0.95)


@dataclass(frozen=True)
class ConstantNoise:
    """Every decided label is flipped with probability ``epsilon``."""

    epsilon: float = 0.1
    name: NoiseName = "constant"

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            raise ParameterError("epsilon", "epsilon must be in [0, 1]")

    def resolved(self, pair_similarities: npt.ArrayLike) -> ConstantNoise:
        """The same model: nothing depends on the data."""
        return self

    def flip_probability(self, similarity: npt.ArrayLike) -> FloatArray:
        """ε for each pair."""
        return np.full(np.shape(similarity), self.epsilon, dtype=np.float64)

    def parameters(self) -> dict[str, float | str]:
        """The model's name and parameters, for reports."""
        return asdict(self)


@dataclass(frozen=True)
class SimilarityNoise:
    """Flip probability rising linearly with the pair's cosine similarity between two thresholds."""

    epsilon_min: float = 0.05
    epsilon_max: float = 0.40
    similarity_low: float | None = None
    similarity_high: float | None = None
    name: NoiseName = "similarity"

    def __post_init__(self) -> None:
        bounds = {"epsilon_min": self.epsilon_min, "epsilon_max": self.epsilon_max}
        if not all(0.0 <= e <= 1.0 for e in bounds.values()):
            raise ParameterError(
                tuple(k for k, e in bounds.items() if not 0.0 <= e <= 1.0),
                "epsilon_min and epsilon_max must be in [0, 1]",
            )
        low, high = self.similarity_low, self.similarity_high
        if low is not None and high is not None and high <= low:
            raise ParameterError("similarity_high", "similarity_high must be above similarity_low")

    def resolved(self, pair_similarities: npt.ArrayLike) -> SimilarityNoise:
        """This model with an unset s_low / s_high taken from the percentiles of the data's pair cosines."""
        low, high = np.quantile(np.asarray(pair_similarities, dtype=np.float64), RAMP_QUANTILES)
        low = float(low) if self.similarity_low is None else self.similarity_low
        high = float(high) if self.similarity_high is None else self.similarity_high
        if high <= low:
            raise ParameterError(
                ("similarity_low", "similarity_high"),
                f"the similarity ramp would end ({high:.3f}) before it starts ({low:.3f}); set both",
            )
        return replace(self, similarity_low=low, similarity_high=high)

    def flip_probability(self, similarity: npt.ArrayLike) -> FloatArray:
        """ε(s) for each pair's cosine similarity s (s_low and s_high set, or ``resolved`` first)."""
        if self.similarity_low is None or self.similarity_high is None:
            raise ValueError("the similarity ramp's ends are unset: call resolved() with the data's cosines")
        s = np.asarray(similarity, dtype=np.float64)
        ramp = np.clip((s - self.similarity_low) / (self.similarity_high - self.similarity_low), 0.0, 1.0)
        out: FloatArray = self.epsilon_min + (self.epsilon_max - self.epsilon_min) * ramp
        return out

    def parameters(self) -> dict[str, float | str]:
        """The model's name and parameters, for reports."""
        return asdict(self)


NoiseModel = ConstantNoise | SimilarityNoise


def truth(score_a: npt.ArrayLike, score_b: npt.ArrayLike) -> IntArray:
    """+1 where a's score is higher, −1 where b's is, 0 for a tie."""
    out: IntArray = np.sign(
        np.asarray(score_a, dtype=np.float64) - np.asarray(score_b, dtype=np.float64)
    ).astype(np.int64)
    return out


@dataclass(frozen=True)
class Labels:
    """One simulated label per pair: whether it says a won, and what it was against the truth."""

    a_won: BoolArray
    wrong: BoolArray  # a decided pair labelled against its truth
    tie: BoolArray  # a true tie (labelled by a coin)


def annotate(
    truth_sign: npt.ArrayLike,
    flip_probability: npt.ArrayLike,
    flip_draws: npt.ArrayLike,
    coin_draws: npt.ArrayLike,
) -> Labels:
    """Labels for pairs with the given truths (+1 / −1 / 0), flip probabilities and uniform draws."""
    t = np.asarray(truth_sign, dtype=np.int64)
    flipped = np.asarray(flip_draws, dtype=np.float64) < np.asarray(flip_probability, dtype=np.float64)
    tie = t == 0
    decided_a_won = (t > 0) != flipped
    coin_a_won = np.asarray(coin_draws, dtype=np.float64) < 0.5
    return Labels(a_won=np.where(tie, coin_a_won, decided_a_won), wrong=~tie & flipped, tie=tie)
