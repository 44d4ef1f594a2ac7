"""The dashboard's pure computations on planted data: buckets, agreement points, similarity histograms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from app.dashboard import series
from app.quality.agreement import krippendorff_alpha_nominal

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


class TestBuckets:
    def test_buckets_align_to_the_epoch(self) -> None:
        assert series.bucket_floor(T0 + timedelta(minutes=59, seconds=59), 3600) == T0
        assert series.bucket_count(T0 + timedelta(minutes=5), T0 + timedelta(hours=2), 3600) == 3
        assert series.bucket_starts(T0 + timedelta(minutes=5), T0 + timedelta(minutes=20), 900) == [
            T0,
            T0 + timedelta(minutes=15),
        ]

    def test_the_default_is_the_smallest_size_within_the_limit(self) -> None:
        assert series.auto_bucket(T0, T0 + timedelta(minutes=119)) == 60
        assert series.auto_bucket(T0, T0 + timedelta(minutes=120)) == 300
        assert series.auto_bucket(T0, T0 + timedelta(days=20)) == 6 * 3600
        assert series.auto_bucket(T0, T0 + timedelta(days=3_000)) == 7 * 86_400

    def test_counts(self) -> None:
        starts = [T0, T0 + timedelta(hours=1)]
        times = [T0, T0 + timedelta(minutes=59), T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
        assert series.count_per_bucket(times, starts, 3600) == [2, 1]


class TestAgreementOverTime:
    def test_points_end_at_the_last_bucket(self) -> None:
        assert series.point_indices(3) == [0, 1, 2]
        picked = series.point_indices(100)
        assert len(picked) == series.AGREEMENT_POINTS
        assert picked[-1] == 99
        assert series.agreement_points(1_000) == series.AGREEMENT_POINTS
        assert series.agreement_points(100_000) == 10
        assert series.agreement_points(10_000_000) == 2

    def test_each_point_counts_the_labels_before_it(self) -> None:
        labels = [
            (T0, "p1", "x", "a"),
            (T0 + timedelta(minutes=1), "p1", "y", "a"),
            (T0 + timedelta(minutes=2), "p2", "x", "a"),
            (T0 + timedelta(minutes=3), "p2", "y", "b"),
        ]
        early, late = series.agreement_over_time(labels, [T0 + timedelta(minutes=2), T0 + timedelta(hours=1)])
        assert (early.labels, early.pairs_with_overlap, early.krippendorff_alpha) == (2, 1, None)
        assert (late.labels, late.pairs_with_overlap) == (4, 2)
        assert late.krippendorff_alpha == krippendorff_alpha_nominal([row[1:] for row in labels])


class TestPairSimilarities:
    def test_near_duplicates_are_counted_not_binned(self) -> None:
        # Prompt 0: responses 0 and 1 nearly identical (cos 0.995), 2 orthogonal; prompt 1: two responses.
        vectors = np.zeros((2, 3, 3))
        vectors[0, 0] = [1.0, 0.0, 0.0]
        vectors[0, 1] = [1.0, 0.1, 0.0]
        vectors[0, 2] = [0.0, 0.0, 1.0]
        vectors[1, 0] = [1.0, 1.0, 0.0]
        vectors[1, 1] = [1.0, 0.0, 0.0]
        mask = np.array([[True, True, True], [True, True, False]])
        found = series.pair_similarities(vectors, mask, 0.98, [[(0, 2)], [(0, 1)]])
        assert sorted(found.candidates.round(6)) == [0.0, round(1 / np.sqrt(2), 6)]
        assert found.selected.round(6).tolist() == [0.0, round(1 / np.sqrt(2), 6)]
        assert found.near_duplicate_pairs == 2  # (0, 1) and (1, 2) of prompt 0
        everything = series.pair_similarities(vectors, mask, None, [[], []])
        assert len(everything.candidates) == 4
        assert everything.near_duplicate_pairs == 0

    def test_histogram_bins_cover_the_cosine_range(self) -> None:
        edges = series.histogram_edges(4)
        assert edges.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
        assert series.histogram(np.array([-1.0, -0.2, 0.0, 0.7, 1.0]), edges) == [1, 1, 1, 2]
