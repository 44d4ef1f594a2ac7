"""The dashboard's pure computations: time buckets, agreement as it stood over time, similarity histograms.

No database and no HTTP: rows and arrays in, numbers out.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from app.quality.agreement import fleiss_kappa, krippendorff_alpha_nominal
from app.selection.strategies import collapse_near_duplicates, similarities

# Bucket sizes the timeline picks from when none is asked for: the smallest that covers the project's label
# history in at most AUTO_MAX_BUCKETS buckets.
BUCKET_LADDER: tuple[int, ...] = (60, 300, 900, 3_600, 3 * 3_600, 6 * 3_600, 86_400, 7 * 86_400)
AUTO_MAX_BUCKETS = 120
# An explicit bucket size may give at most this many buckets (more is 422 naming bucket_seconds).
MAX_BUCKETS = 2_000
# Agreement is recomputed from the labels as of up to this many evenly spaced bucket ends (the last one is
# now). Each point is one pass of app/quality/agreement.py over the labels stored by then (51,000 labels x 24
# points took 1.9 s), so fewer points are taken once points x labels would pass AGREEMENT_LABEL_PASSES
# (never fewer than 2).
AGREEMENT_POINTS = 24
AGREEMENT_LABEL_PASSES = 1_000_000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_floor(moment: datetime, size: int) -> datetime:
    """The start of the ``size``-second bucket (aligned to the Unix epoch, UTC) that holds ``moment``."""
    seconds = int((moment - _EPOCH).total_seconds())
    return _EPOCH + timedelta(seconds=seconds - seconds % size)


def bucket_count(first: datetime, now: datetime, size: int) -> int:
    """How many ``size``-second buckets run from the one holding ``first`` to the one holding ``now``."""
    span = (bucket_floor(now, size) - bucket_floor(first, size)).total_seconds()
    return int(span) // size + 1


def auto_bucket(first: datetime, now: datetime) -> int:
    """The smallest ladder size giving at most AUTO_MAX_BUCKETS buckets (the largest if none does)."""
    for size in BUCKET_LADDER:
        if bucket_count(first, now, size) <= AUTO_MAX_BUCKETS:
            return size
    return BUCKET_LADDER[-1]


def bucket_starts(first: datetime, now: datetime, size: int) -> list[datetime]:
    """The start of every bucket from the one holding ``first`` to the one holding ``now``."""
    start = bucket_floor(first, size)
    return [start + timedelta(seconds=size * n) for n in range(bucket_count(first, now, size))]


def count_per_bucket(times: Sequence[datetime], starts: Sequence[datetime], size: int) -> list[int]:
    """How many of ``times`` fall in each bucket (times outside every bucket are not counted)."""
    counts = [0] * len(starts)
    if not starts:
        return counts
    origin = starts[0]
    for moment in times:
        index = int((moment - origin).total_seconds()) // size
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


def agreement_points(labels: int) -> int:
    """How many agreement points the timeline computes over this many labels."""
    return max(2, min(AGREEMENT_POINTS, AGREEMENT_LABEL_PASSES // max(labels, 1)))


def point_indices(buckets: int, points: int = AGREEMENT_POINTS) -> list[int]:
    """Up to ``points`` evenly spaced bucket indices, the last bucket always among them."""
    if buckets <= points:
        return list(range(buckets))
    step = buckets / points
    return sorted({buckets - 1 - int(n * step) for n in range(points)})


@dataclass(frozen=True)
class AgreementAt:
    """Agreement over the labels stored before ``at`` (ordinary pairs only, as the quality snapshot)."""

    at: datetime
    labels: int
    pairs_with_overlap: int
    krippendorff_alpha: float | None
    fleiss_kappa: float | None


def agreement_over_time(
    labels: Sequence[tuple[datetime, Hashable, str, str]], ends: Sequence[datetime]
) -> list[AgreementAt]:
    """Krippendorff's alpha and Fleiss' kappa (app/quality/agreement.py) of the labels stored before each
    of ``ends``; ``labels`` are (stored at, pair, annotator, pair side)."""
    ordered = sorted(labels, key=lambda row: row[0])
    times = [row[0] for row in ordered]
    out = []
    for end in ends:
        upto = [(pair, annotator, side) for _at, pair, annotator, side in ordered[: bisect_left(times, end)]]
        per_pair: dict[Hashable, int] = {}
        for pair, _annotator, _side in upto:
            per_pair[pair] = per_pair.get(pair, 0) + 1
        out.append(
            AgreementAt(
                at=end,
                labels=len(upto),
                pairs_with_overlap=sum(1 for n in per_pair.values() if n >= 2),
                krippendorff_alpha=krippendorff_alpha_nominal(upto),
                fleiss_kappa=fleiss_kappa(upto).kappa,
            )
        )
    return out


@dataclass(frozen=True)
class PairSimilarities:
    """Cosine similarities of every candidate pair of some prompts and of the pairs chosen among them."""

    candidates: npt.NDArray[np.float64]
    selected: npt.NDArray[np.float64]
    near_duplicate_pairs: int


def pair_similarities(
    vectors: npt.NDArray[np.floating],
    mask: npt.NDArray[np.bool_],
    threshold: float | None,
    chosen: Sequence[Sequence[tuple[int, int]]],
) -> PairSimilarities:
    """Similarities by the selection's own computation (app/selection/strategies.py): ``similarities`` of
    the padded (P, k, d) candidates, near-duplicates collapsed at ``threshold`` as ``select_batch`` does.

    A candidate pair is any two responses of one prompt that survive the collapse (the pairs a strategy
    scores); pairs with a collapsed response are only counted. ``chosen[p]`` lists the (i, j) candidate
    indices of prompt p's selected pairs.
    """
    sims = similarities(vectors, mask)
    kept = collapse_near_duplicates(sims, mask, threshold)
    iu, ju = np.triu_indices(sims.shape[-1], k=1)
    valid = mask[:, iu] & mask[:, ju]
    candidate = kept[:, iu] & kept[:, ju]
    selected = [float(sims[p, i, j]) for p, pairs in enumerate(chosen) for i, j in pairs]
    return PairSimilarities(
        candidates=sims[:, iu, ju][candidate],
        selected=np.asarray(selected, dtype=np.float64),
        near_duplicate_pairs=int((valid & ~candidate).sum()),
    )


def histogram_edges(bins: int) -> npt.NDArray[np.float64]:
    """``bins`` equal bins over the whole cosine range [-1, 1]."""
    return np.linspace(-1.0, 1.0, bins + 1)


def histogram(values: npt.NDArray[np.float64], edges: npt.NDArray[np.float64]) -> list[int]:
    """Counts per bin (the last bin includes 1.0)."""
    counts, _ = np.histogram(values, bins=edges)
    return [int(c) for c in counts]
