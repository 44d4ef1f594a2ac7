"""The report's statistics, and its Markdown, JSON and plots from one run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.simulation import report
from app.simulation.engine import Config, Pool, run, tie_rate_by_similarity
from tests.simulation.synthetic import planted


class TestLabelsToReach:
    def test_interpolates_between_checkpoints(self) -> None:
        assert report.labels_to_reach([10, 20, 30], [0.6, 0.7, 0.8], 0.75) == pytest.approx(25.0)

    def test_starts_from_chance_at_zero_labels(self) -> None:
        assert report.labels_to_reach([10, 20], [0.6, 0.7], 0.55) == pytest.approx(5.0)

    def test_takes_the_first_crossing(self) -> None:
        assert report.labels_to_reach([10, 20, 30], [0.8, 0.6, 0.9], 0.7) == pytest.approx(20 / 3)

    def test_a_curve_always_reaches_its_own_last_point(self) -> None:
        # The mean of a (20, C) array's last column and the column's own mean are summed in different
        # orders, so they can differ in the last bit; the curve must still reach its own full-budget value.
        runs = np.random.default_rng(4).uniform(0.55, 0.75, size=(20, 8))
        need = report.labels_needed(list(range(10, 90, 10)), runs, runs[:, -1])
        assert need["mean"] is not None
        assert need["high"] is not None
        assert need["bootstrap_reached"] == 1.0
        assert need["reached"] == 20

    def test_never_reached_is_none(self) -> None:
        assert report.labels_to_reach([10, 20], [0.6, 0.7], 0.71) is None


class TestEstimate:
    def test_mean_and_t_interval(self) -> None:
        got = report.estimate([1.0, 2.0, 3.0])
        half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2) · sd / √n, sd = 1
        assert got == pytest.approx({"mean": 2.0, "low": 2.0 - half, "high": 2.0 + half}, abs=1e-6)

    def test_cut_to_the_metrics_range(self) -> None:
        got = report.estimate([0.9, 1.0, 1.0], 0.0, 1.0)
        assert got["high"] == 1.0
        assert got["low"] is not None
        assert got["low"] < 0.9

    def test_one_value_has_no_interval(self) -> None:
        assert report.estimate([0.7]) == {"mean": 0.7, "low": None, "high": None}


def test_write_gives_markdown_json_and_pngs(tmp_path: Path) -> None:
    data, vectors = planted(prompts=100, levels=3)
    pool = Pool.build(data, vectors)
    result = run(pool, Config(budgets=(20, 40, 80), repeats=2, every=20, round_size=20))
    summary = report.summarise(result, tie_rate_by_similarity(pool), {"name": "planted"})
    paths = report.write(summary, tmp_path, "planted")
    names = sorted(p.name for p in paths)
    assert names == [
        "accuracy.png",
        "label_error.png",
        "labels_needed.png",
        "simulation.json",
        "simulation.md",
    ]
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = json.loads((tmp_path / "simulation.json").read_text())
    assert loaded == json.loads(json.dumps(summary))
    assert set(loaded["strategies"]) == {"random", "dissimilar", "similar", "centroid", "active"}
    random = loaded["strategies"]["random"]
    assert loaded["target"]["runs"] == [run[-1] for run in random["accuracy"]["runs"]]
    markdown = (tmp_path / "simulation.md").read_text()
    for strategy in loaded["strategies"]:
        assert f"| {strategy} | " in markdown
    assert "![accuracy](accuracy.png)" in markdown
    assert "## The premise" in markdown
    assert "## Targets (issue 12)" in markdown
