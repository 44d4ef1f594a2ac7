"""The simulator's report: summary statistics (JSON), Markdown tables and PNG plots.

Every number is a mean over the repeats with a 95% Student-t interval, mean ± t(0.975, R − 1) · sd / √R
(sd with R − 1 degrees of freedom; no interval for one repeat). The repeats differ in the held-out split, the
annotator's draws and ``random``'s pairs, and every strategy sees the same split and draws within a repeat.

"Labels to reach the target" (the paper's annotation saved): the target is ``random``'s mean held-out
accuracy at the full budget, and a strategy's labels are the first point where its mean accuracy curve
(checkpoints, linearly interpolated, starting from chance accuracy 0.5 at 0 labels) reaches it, or "not
reached". A single repeat's curve is too noisy for a crossing point (one lucky repeat of ``random`` sets a
target nothing else reaches in that repeat), so the interval is a paired bootstrap over repeats: 2,000
resamples of the repeats (seeded, so the report is deterministic), each giving its own mean curves, target
and crossing; the 2.5th and 97.5th percentiles, a resample that never reaches counting as infinitely many
labels (an upper end of "not reached" when more than 2.5% of resamples never reach). The per-repeat
crossings against each repeat's own target are in the JSON (``runs``, ``reached``) as well.

matplotlib is imported only to draw (Agg backend, no display needed).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.simulation.engine import STATIC_STRATEGIES, SimilarityBin, SimulationResult

# Student t quantiles t(0.975, df) for df = 1..30; above 30 the normal 1.96 is within 2%.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_REACH_TOLERANCE = 1e-9
_BOOTSTRAP = 2000
_BOOTSTRAP_SEED = 0
_DIGITS = 6  # JSON floats are rounded, so the file does not carry the last bits of float noise
COLOURS = {
    "random": "#7f7f7f",
    "dissimilar": "#1f77b4",
    "similar": "#d62728",
    "centroid": "#2ca02c",
    "active": "#9467bd",
}
TARGET_SHARE = 0.35  # issue 12: active reaches random's full-budget accuracy with at most 35% of the labels
TARGET_SAVING = 0.10  # ... and with at least 10% fewer labels than the best static strategy


def t_quantile(df: int) -> float:
    """t(0.975, df)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96


def estimate(
    values: Sequence[float], low: float = -math.inf, high: float = math.inf
) -> dict[str, float | None]:
    """Mean and 95% t-interval of the values (None for fewer than two), cut to the metric's range [low, high]:
    the true value lies in that range, so cutting the interval there keeps its coverage."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "low": None, "high": None}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": _round(mean), "low": None, "high": None}
    half = t_quantile(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return {
        "mean": _round(mean),
        "low": _round(max(low, mean - half)),
        "high": _round(min(high, mean + half)),
    }


def _round(x: float) -> float:
    return round(float(x), _DIGITS)


def labels_to_reach(checkpoints: Sequence[int], accuracy: npt.ArrayLike, target: float) -> float | None:
    """The first label count where the curve reaches ``target`` (linear between checkpoints), or None."""
    # A mean over repeats and the mean of the same values taken apart can differ in the last bit: within
    # _REACH_TOLERANCE counts as reached, so `random` always reaches its own full-budget accuracy.
    target -= _REACH_TOLERANCE
    xs = [0.0, *map(float, checkpoints)]
    ys = [0.5, *(float(a) for a in np.asarray(accuracy, dtype=np.float64))]
    if ys[0] >= target:
        return 0.0
    for k in range(1, len(xs)):
        if ys[k] >= target:
            return xs[k - 1] + (target - ys[k - 1]) / (ys[k] - ys[k - 1]) * (xs[k] - xs[k - 1])
    return None


def labels_needed(checkpoints: Sequence[int], runs: npt.ArrayLike, targets: npt.ArrayLike) -> dict[str, Any]:
    """Labels for the mean curve to reach the mean target, its paired bootstrap interval, and the
    per-repeat crossings. ``runs``: (R, C) accuracies; ``targets``: (R,) random's full-budget accuracies."""
    acc = np.asarray(runs, dtype=np.float64)
    goal = np.asarray(targets, dtype=np.float64)
    point = labels_to_reach(checkpoints, acc.mean(axis=0), float(goal.mean()))
    per_repeat = [labels_to_reach(checkpoints, a, float(t)) for a, t in zip(acc, goal, strict=True)]
    out: dict[str, Any] = {
        "mean": None if point is None else _round(point),
        "low": None,
        "high": None,
        "bootstrap_reached": None,
        "runs": [None if n is None else _round(n) for n in per_repeat],
        "reached": sum(n is not None for n in per_repeat),
    }
    if len(acc) < 2:
        return out
    picks = np.random.default_rng(_BOOTSTRAP_SEED).integers(0, len(acc), size=(_BOOTSTRAP, len(acc)))
    curves, aims = acc[picks].mean(axis=1), goal[picks].mean(axis=1)
    draws = [labels_to_reach(checkpoints, c, float(t)) for c, t in zip(curves, aims, strict=True)]
    values = np.asarray([math.inf if d is None else d for d in draws])
    low, high = np.quantile(values, [0.025, 0.975], method="inverted_cdf")
    out["low"] = None if math.isinf(low) else _round(low)
    out["high"] = None if math.isinf(high) else _round(high)
    out["bootstrap_reached"] = _round(float(np.isfinite(values).mean()))
    return out


def _series(runs: list[list[float]]) -> dict[str, Any]:
    """Per-repeat values of one share (in [0, 1]) and, per checkpoint, their mean and interval."""
    columns = [estimate([run[c] for run in runs], 0.0, 1.0) for c in range(len(runs[0]))]
    return {
        "runs": [[_round(v) for v in run] for run in runs],
        "mean": [c["mean"] for c in columns],
        "low": [c["low"] for c in columns],
        "high": [c["high"] for c in columns],
    }


def summarise(
    result: SimulationResult, premise: list[SimilarityBin] | None = None, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Everything the report shows, as plain JSON-ready values."""
    config = result.config
    checkpoints = list(result.checkpoints)
    full = checkpoints.index(config.full_budget)
    summary: dict[str, Any] = {
        "data": data or {},
        "config": {
            "budgets": list(config.budgets),
            "strategies": list(config.strategies),
            "repeats": config.repeats,
            "seed": config.seed,
            "held_out": config.held_out,
            "round_size": config.round_size,
            "every": config.every,
            "l2": config.l2,
            "near_duplicate_threshold": config.near_duplicate_threshold,
            "uncertainty_weight": config.uncertainty_weight,
            "novelty_weight": config.novelty_weight,
            "noise": config.noise.parameters(),
        },
        "repeats": [vars(info) for info in result.repeats],
        "checkpoints": checkpoints,
        "strategies": {},
    }
    targets: list[float] | None = None
    if "random" in result.curves:
        targets = [float(c.accuracy[full]) for c in result.curves["random"]]
        summary["target"] = {
            "what": "random's held-out accuracy at the full budget",
            "full_budget": config.full_budget,
            "runs": [_round(t) for t in targets],
            **estimate(targets, 0.0, 1.0),
        }
    for strategy, curves in result.curves.items():
        entry: dict[str, Any] = {
            metric: _series([getattr(c, metric).tolist() for c in curves])
            for metric in ("accuracy", "label_error", "decided_error", "tie_share", "similarity")
        }
        if targets is not None:
            entry["labels_to_target"] = labels_needed(
                checkpoints, np.asarray([c.accuracy for c in curves]), np.asarray(targets)
            )
        summary["strategies"][strategy] = entry
    if targets is not None and "active" in result.curves:
        summary["targets"] = _targets(summary["strategies"], config.full_budget)
    if premise is not None:
        summary["premise"] = [
            {
                "low": _round(b.low),
                "high": _round(b.high),
                "pairs": b.pairs,
                "ties": b.ties,
                "tie_rate": _round(b.ties / b.pairs) if b.pairs else None,
            }
            for b in premise
        ]
    return summary


def _targets(strategies: dict[str, Any], full_budget: int) -> dict[str, Any]:
    """Issue 12's two targets for ``active``, judged on the mean curves' labels to reach the target."""
    active = strategies["active"]["labels_to_target"]["mean"]
    static = {
        s: e["labels_to_target"]["mean"]
        for s, e in strategies.items()
        if s in STATIC_STRATEGIES and e["labels_to_target"]["mean"] is not None
    }
    best = min(static, key=lambda s: static[s]) if static else None
    share = None if active is None else active / full_budget
    saving = None if active is None or best is None or not static[best] else 1.0 - active / static[best]
    return {
        "active_labels": active,
        "active_share_of_full_budget": None if share is None else _round(share),
        "share_target": TARGET_SHARE,
        "share_met": share is not None and share <= TARGET_SHARE,
        "best_static": best,
        "best_static_labels": None if best is None else static[best],
        "saving_vs_best_static": None if saving is None else _round(saving),
        "saving_target": TARGET_SAVING,
        "saving_met": saving is not None and saving >= TARGET_SAVING,
    }


def write_json(summary: dict[str, Any], path: Path) -> None:
    """The summary as sorted, indented JSON (the same run gives the same bytes)."""
    path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _cell(mean: float | None, low: float | None, high: float | None, digits: int = 3) -> str:
    if mean is None:
        return "–"
    if low is None or high is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def labels_cell(need: dict[str, Any]) -> str:
    """Labels to reach the target as "mean [low, high]", or "not reached"."""
    if need["mean"] is None:
        return "not reached"
    low = "–" if need["low"] is None else f"{need['low']:.0f}"
    if need["high"] is not None:
        high = f"{need['high']:.0f}"
    else:
        high = "–" if need["bootstrap_reached"] is None else "not reached"
    return f"{need['mean']:.0f} [{low}, {high}]"


def _at(series: dict[str, Any], index: int) -> tuple[float | None, float | None, float | None]:
    return series["mean"][index], series["low"][index], series["high"][index]


def markdown(summary: dict[str, Any], images: Sequence[str] = ()) -> str:
    """The report as Markdown tables (and links to the plots)."""
    config, data = summary["config"], summary["data"]
    checkpoints, budgets = summary["checkpoints"], config["budgets"]
    at = [checkpoints.index(b) for b in budgets]
    noise = ", ".join(f"{k} {v:.3g}" for k, v in config["noise"].items() if k != "name")
    repeats = summary["repeats"]
    comparisons = sorted(r["held_out_comparisons"] for r in repeats)
    lines = [f"# Budget simulation: {data.get('name', 'input')}", ""]
    if data:
        lines.append(
            f"{data.get('format')} format, {data.get('prompts')} prompts, {data.get('responses')} responses; "
            f"embeddings: {data.get('embedding_model')}."
        )
    lines += [
        f"Noise: {config['noise']['name']} ({noise}). {config['repeats']} repeats, seed {config['seed']}; "
        f"{repeats[0]['held_out_prompts']} prompts held out per repeat "
        f"({comparisons[0]}–{comparisons[-1]} "
        f"decided held-out comparisons), {repeats[0]['train_prompts']} to label; one label per prompt; "
        f"active rounds of {config['round_size']} (weights: uncertainty {config['uncertainty_weight']}, "
        f"novelty {config['novelty_weight']}); L2 {config['l2']}. "
        "Mean [95% t-interval] over repeats.",
        "",
        "## Held-out reward-model accuracy by labels spent",
        "",
        "| strategy | " + " | ".join(str(b) for b in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    strategies = summary["strategies"]
    for name, entry in strategies.items():
        lines.append(f"| {name} | " + " | ".join(_cell(*_at(entry["accuracy"], i)) for i in at) + " |")
    full = at[-1]
    lines += [
        "",
        f"## Collected labels at the full budget ({budgets[-1]})",
        "",
        "Label error rate: the share of all labels spent that contradict a decided pair's truth (a label on "
        "a true tie is never wrong); the next column counts labels on decided pairs only.",
        "",
        "| strategy | label error rate | wrong among decided pairs' labels | labels on true ties "
        "| mean cosine of labelled pairs |",
        "|---|---|---|---|---|",
    ]
    for name, entry in strategies.items():
        cells = [
            _cell(*_at(entry[m], full)) for m in ("label_error", "decided_error", "tie_share", "similarity")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "target" in summary:
        target = _cell(summary["target"]["mean"], summary["target"]["low"], summary["target"]["high"])
        lines += [
            "",
            f"## Labels to reach random's full-budget accuracy ({target})",
            "",
            "Mean curves; [95% paired bootstrap over repeats]; the last column counts the repeats whose own "
            "curve reaches that repeat's own target.",
            "",
            "| strategy | labels | share of the full budget | repeats reaching it alone |",
            "|---|---|---|---|",
        ]
        for name, entry in strategies.items():
            need = entry["labels_to_target"]
            # Rounded as the targets' share is, so both print the same percentage.
            share = "not reached" if need["mean"] is None else f"{_round(need['mean'] / budgets[-1]):.0%}"
            lines.append(
                f"| {name} | {labels_cell(need)} | {share} | {need['reached']}/{config['repeats']} |"
            )
    if "targets" in summary:
        t = summary["targets"]
        share = t["active_share_of_full_budget"]
        saving = t["saving_vs_best_static"]
        lines += [
            "",
            "## Targets (issue 12)",
            "",
            f"- `active` reaches it with ≤ {t['share_target']:.0%} of the full budget: "
            + ("**met**" if t["share_met"] else "**not met**")
            + (f" ({share:.0%})" if share is not None else " (not reached)"),
            f"- `active` needs ≥ {t['saving_target']:.0%} fewer labels than the best static strategy "
            + (
                f"({t['best_static']}, {t['best_static_labels']:.0f} labels): "
                if t["best_static"]
                else "(none reaches it): "
            )
            + ("**met**" if t["saving_met"] else "**not met**")
            + (
                ""
                if saving is None
                else f" ({saving:.0%} fewer)"
                if saving >= 0
                else f" ({-saving:.0%} more)"
            ),
        ]
    if summary.get("premise"):
        lines += [
            "",
            "## The premise: ground-truth ties by the pair's cosine similarity (all pairs, quintiles)",
            "",
            "| bin | cosine | pairs | ties | tie rate |",
            "|---|---|---|---|---|",
        ]
        for n, b in enumerate(summary["premise"], 1):
            rate = "–" if b["tie_rate"] is None else f"{b['tie_rate']:.3f}"
            lines.append(f"| {n} | {b['low']:.3f}–{b['high']:.3f} | {b['pairs']} | {b['ties']} | {rate} |")
    if images:
        lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], out_dir: Path, title: str) -> list[Path]:
    """accuracy.png, label_error.png and labels_needed.png in ``out_dir``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(summary["checkpoints"], dtype=np.float64)
    strategies: dict[str, Any] = summary["strategies"]
    paths: list[Path] = []

    def band(ax: Any, series: dict[str, Any], name: str) -> None:
        mean = np.asarray(series["mean"], dtype=np.float64)
        colour = COLOURS.get(name)
        ax.plot(x, mean, marker=".", color=colour, label=name)
        if series["low"][0] is not None:
            low = np.asarray(series["low"], dtype=np.float64)
            high = np.asarray(series["high"], dtype=np.float64)
            ax.fill_between(x, low, high, color=colour, alpha=0.15, linewidth=0)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, entry in strategies.items():
        band(ax, entry["accuracy"], name)
    if "target" in summary:
        ax.axhline(summary["target"]["mean"], color="black", linestyle="--", linewidth=0.8,
                   label="random at full budget")  # fmt: skip
    ax.set(xlabel="labels spent", ylabel="held-out reward-model accuracy", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out_dir / "accuracy.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = (
        ("label_error", "label error rate (of all labels)"),
        ("decided_error", "wrong among decided pairs' labels"),
        ("tie_share", "labels spent on true ties"),
    )
    for ax, (metric, heading) in zip(axes, panels, strict=True):
        for name, entry in strategies.items():
            band(ax, entry[metric], name)
        ax.set(xlabel="labels spent", ylabel="share of labels", title=heading)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    paths.append(out_dir / "label_error.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    if "target" in summary:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(strategies)
        ax_limit = summary["config"]["budgets"][-1] * 1.05  # an interval open above ends at the plot's edge
        for row, name in enumerate(names):
            need = strategies[name]["labels_to_target"]
            if need["mean"] is None:
                ax.text(0, row, "  not reached", va="center", fontsize=8)
                continue
            ax.barh(row, need["mean"], color=COLOURS.get(name))
            if need["low"] is not None:
                high = need["high"] if need["high"] is not None else ax_limit
                ax.plot([need["low"], high], [row, row], color="black", linewidth=1)
            note = f"  {need['mean']:.0f}" + ("" if need["high"] is not None else " (interval: not reached)")
            ax.text(need["mean"], row, note, va="bottom", fontsize=8)
        ax.axvline(summary["config"]["budgets"][-1], color="black", linestyle="--", linewidth=0.8)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set(xlabel="labels to reach random's full-budget accuracy", title=title)
        ax.grid(alpha=0.3, axis="x")
        fig.tight_layout()
        paths.append(out_dir / "labels_needed.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def write(summary: dict[str, Any], out_dir: Path, title: str) -> list[Path]:
    """simulation.json, the PNG plots and simulation.md (which links them) in ``out_dir``; their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "simulation.json"
    write_json(summary, json_path)
    try:
        images = plot(summary, out_dir, title)
    except ModuleNotFoundError as exc:
        if exc.name != "matplotlib":
            raise
        # An optional extra (`pip install 'real-align[simulate]'`): the tables are written without plots.
        logging.getLogger(__name__).warning("simulation.no_plots: matplotlib is not installed")
        images = []
    md_path = out_dir / "simulation.md"
    md_path.write_text(markdown(summary, [p.name for p in images]), encoding="utf-8")
    return [md_path, json_path, *images]
