"""The budget simulator's loop: spend a label budget with each strategy, learn a reward model, score it.

Pure numpy over the service's own selection maths: ``app.selection.strategies.select_batch`` chooses the
static strategies' pairs, ``app.active.acquisition.priority`` ranks the ``active`` strategy's candidates,
and ``app.active.reward_model`` fits and scores the Bradley–Terry reward model. No database, no server.

One repeat (seeded by ``seed`` and the repeat number):

1. The prompts are split: ``held_out`` of them (20% by default) are set aside. Every decided pair of a
   held-out prompt (all pairs of its responses whose scores differ) is a held-out comparison.
2. Each strategy spends the budget on the other prompts, one pair and one label per prompt:
   - ``random``, ``dissimilar``, ``similar``, ``centroid``: ``select_batch`` picks each prompt's pair once,
     and labels are spent in queue order, highest priority first (the service's queue order; ``random``'s
     priority is a seeded uniform draw, so its order is random);
   - ``active``: labels are spent in rounds of ``round_size``. Before each round the reward model is refitted
     on the labels so far, every candidate pair of every unlabelled prompt (all pairs of its responses left
     after near-duplicate collapse) gets ``priority(similarity, probability, novelty)``, and the round takes
     the best pair of each of the highest-priority prompts. With no labels yet this is ``dissimilar``.
3. A simulated annotator (``annotators``) labels each pair; every strategy meets the same draws on the
   same pair. At each checkpoint (every ``every`` labels, and each budget) the reward model is fitted on the
   labels spent so far and its accuracy on the held-out comparisons recorded, with the share of labels that
   were wrong (a decided pair labelled against its truth), the same share among decided pairs' labels only,
   the share spent on true ties, and the mean cosine similarity of the pairs labelled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from app.active.acquisition import NOVELTY_WEIGHT, UNCERTAINTY_WEIGHT, priority
from app.active.reward_model import DEFAULT_L2, accuracy, features, fit
from app.selection.strategies import (
    collapse_near_duplicates,
    normalize,
    seed_for,
    select_batch,
    similarities,
    uniform_hash,
)
from app.simulation.annotators import ConstantNoise, Labels, NoiseModel, annotate, truth
from app.simulation.errors import ParameterError
from app.simulation.inputs import SimulationInput

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

STRATEGIES: tuple[str, ...] = ("random", "dissimilar", "similar", "centroid", "active")
STATIC_STRATEGIES: tuple[str, ...] = ("random", "dissimilar", "similar", "centroid")
# The service's default near-duplicate threshold (app/projects/models.py, Project.near_duplicate_threshold).
DEFAULT_NEAR_DUPLICATE_THRESHOLD = 0.98


@dataclass(frozen=True)
class Pool:
    """Every prompt's responses as padded arrays: unit vectors (P, K, d), mask (P, K), scores (P, K)."""

    prompt_ids: tuple[str, ...]
    vectors: FloatArray
    mask: BoolArray
    scores: FloatArray

    @classmethod
    def build(cls, data: SimulationInput, vectors: npt.ArrayLike) -> Pool:
        """Lay out one vector per response (in ``data.texts()`` order) prompt by prompt."""
        flat = np.asarray(vectors, dtype=np.float64)
        sizes = [len(p.responses) for p in data.prompts]
        if flat.ndim != 2 or len(flat) != sum(sizes):
            raise ValueError(f"need one vector per response ({sum(sizes)}), got shape {flat.shape}")
        p_count, k = len(sizes), max(sizes)
        padded = np.zeros((p_count, k, flat.shape[1]))
        mask = np.zeros((p_count, k), dtype=bool)
        scores = np.full((p_count, k), np.nan)
        start = 0
        for p, prompt in enumerate(data.prompts):
            n = len(prompt.responses)
            padded[p, :n] = flat[start : start + n]
            mask[p, :n] = True
            scores[p, :n] = [r.score for r in prompt.responses]
            start += n
        return cls(tuple(p.external_id for p in data.prompts), normalize(padded), mask, scores)

    @property
    def size(self) -> int:
        """The number of prompts."""
        return len(self.prompt_ids)


@dataclass(frozen=True)
class Config:
    """What to simulate. ``budgets``: label counts to report (the largest is the full budget)."""

    budgets: tuple[int, ...]
    strategies: tuple[str, ...] = STRATEGIES
    repeats: int = 5
    noise: NoiseModel = field(default_factory=ConstantNoise)
    seed: int = 0
    held_out: float = 0.2
    round_size: int = 25
    every: int = 25
    l2: float = DEFAULT_L2
    near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD
    # The active priority's λ weights (app/active/acquisition.py; the service's defaults).
    uncertainty_weight: float = UNCERTAINTY_WEIGHT
    novelty_weight: float = NOVELTY_WEIGHT

    def __post_init__(self) -> None:
        if not self.budgets or min(self.budgets) < 1:
            raise ParameterError("budgets", "budgets must be positive label counts")
        if list(self.budgets) != sorted(set(self.budgets)):
            raise ParameterError("budgets", "budgets must be increasing, without repeats")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies or len(set(self.strategies)) != len(self.strategies):
            raise ParameterError(
                "strategies", f"strategies are distinct names among {', '.join(STRATEGIES)}; got {unknown}"
            )
        counts = {"repeats": self.repeats, "round_size": self.round_size, "every": self.every}
        if min(counts.values()) < 1:
            raise ParameterError(
                tuple(k for k, v in counts.items() if v < 1),
                "repeats, round_size and every must be at least 1",
            )
        if not 0.0 < self.held_out < 1.0:
            raise ParameterError("held_out", "held_out is a share of the prompts, strictly between 0 and 1")
        if self.l2 <= 0:
            raise ParameterError("l2", "l2 must be positive")
        weights = {"uncertainty_weight": self.uncertainty_weight, "novelty_weight": self.novelty_weight}
        if not all(0.0 <= w <= 1.0 for w in weights.values()):
            raise ParameterError(
                tuple(k for k, w in weights.items() if not 0.0 <= w <= 1.0),
                "uncertainty_weight and novelty_weight must be in [0, 1]",
            )

    @property
    def full_budget(self) -> int:
        """The largest budget: the one `random`'s accuracy is the target at."""
        return self.budgets[-1]

    def checkpoints(self) -> tuple[int, ...]:
        """Label counts at which the reward model is evaluated: every ``every`` labels and each budget."""
        return tuple(sorted(set(range(self.every, self.full_budget + 1, self.every)) | set(self.budgets)))


@dataclass(frozen=True)
class Curve:
    """One strategy in one repeat, one value per checkpoint."""

    accuracy: FloatArray  # held-out reward-model accuracy
    label_error: FloatArray  # share of the labels spent that contradict a decided truth
    decided_error: FloatArray  # the same among the labels on decided pairs only (0 with none)
    tie_share: FloatArray  # share of the labels spent on true ties
    similarity: FloatArray  # mean cosine similarity of the pairs labelled


@dataclass(frozen=True)
class RepeatInfo:
    """What a repeat evaluated on."""

    train_prompts: int
    held_out_prompts: int
    held_out_comparisons: int


@dataclass(frozen=True)
class SimulationResult:
    """Every strategy's curves over the repeats, at ``checkpoints``."""

    config: Config
    checkpoints: tuple[int, ...]
    repeats: tuple[RepeatInfo, ...]
    curves: dict[str, tuple[Curve, ...]]


@dataclass(frozen=True)
class Pairs:
    """Pairs in the order their labels are spent: global prompt index and response indices i < j."""

    prompt: IntArray
    i: IntArray
    j: IntArray


class Annotator:
    """A repeat's simulated annotator: the same draw for the same pair, whichever strategy asks."""

    def __init__(self, pool: Pool, noise: NoiseModel, seed: int, repeat: int) -> None:
        self.pool = pool
        self.noise = noise
        self.flip_seed = np.uint64(seed_for("simulate", seed, repeat, "flip"))
        self.coin_seed = np.uint64(seed_for("simulate", seed, repeat, "coin"))

    def similarity(self, seq: Pairs) -> FloatArray:
        """Each pair's cosine similarity."""
        v = self.pool.vectors
        out: FloatArray = np.clip(np.sum(v[seq.prompt, seq.i] * v[seq.prompt, seq.j], axis=-1), -1.0, 1.0)
        return out

    def label(self, seq: Pairs) -> Labels:
        """One label per pair."""
        k = self.pool.mask.shape[1]
        counters = ((seq.prompt * k + seq.i) * k + seq.j).astype(np.uint64)
        signs = truth(self.pool.scores[seq.prompt, seq.i], self.pool.scores[seq.prompt, seq.j])
        return annotate(
            signs,
            self.noise.flip_probability(self.similarity(seq)),
            uniform_hash(np.full(len(counters), self.flip_seed, dtype=np.uint64), counters),
            uniform_hash(np.full(len(counters), self.coin_seed, dtype=np.uint64), counters),
        )


def held_out_count(p_count: int, held_out: float) -> int:
    """How many of ``p_count`` prompts a repeat holds out: the share, rounded, at least one on each side."""
    return min(max(1, round(p_count * held_out)), p_count - 1)


def split(p_count: int, held_out: float, seed: int, repeat: int) -> tuple[IntArray, IntArray]:
    """(training prompts, held-out prompts), each sorted; at least one prompt on each side."""
    order = np.random.default_rng(seed_for("simulate", seed, repeat, "split")).permutation(p_count)
    n_held = held_out_count(p_count, held_out)
    return np.sort(order[n_held:]).astype(np.int64), np.sort(order[:n_held]).astype(np.int64)


def held_out_comparisons(pool: Pool, prompts: IntArray) -> tuple[FloatArray, BoolArray]:
    """Features and a-won outcomes of every decided pair of the given prompts."""
    k = pool.mask.shape[1]
    iu, ju = np.triu_indices(k, k=1)
    p = np.repeat(prompts, len(iu))
    i, j = np.tile(iu, len(prompts)), np.tile(ju, len(prompts))
    present = pool.mask[p, i] & pool.mask[p, j]
    p, i, j = p[present], i[present], j[present]
    signs = truth(pool.scores[p, i], pool.scores[p, j])
    decided = signs != 0
    p, i, j = p[decided], i[decided], j[decided]
    return features(pool.vectors[p, i], pool.vectors[p, j]), signs[decided] > 0


def static_sequence(pool: Pool, train: IntArray, strategy: str, config: Config, repeat: int) -> Pairs:
    """The service's pairs for ``train`` under a static strategy, in queue order (highest priority first)."""
    seeds = np.asarray([seed_for("simulate", config.seed, repeat, pool.prompt_ids[p]) for p in train])
    selection = select_batch(
        pool.vectors[train],
        pool.mask[train],
        strategy,
        1,
        seeds.astype(np.uint64),
        config.near_duplicate_threshold,
    )
    i, j, prio = selection.i[:, 0], selection.j[:, 0], selection.priority[:, 0]
    ok = i >= 0
    order = np.argsort(-prio[ok], kind="stable")  # stable: equal priorities keep prompt order
    return Pairs(train[ok][order], i[ok][order], j[ok][order])


def active_sequence(pool: Pool, train: IntArray, annotator: Annotator, config: Config, budget: int) -> Pairs:
    """The ``active`` strategy's pairs: rounds of ``round_size``, the reward model refitted before each."""
    vectors, mask = pool.vectors[train], pool.mask[train]
    p_count, k, d = vectors.shape
    iu, ju = (np.asarray(a, dtype=np.int64) for a in np.triu_indices(k, k=1))
    sims = similarities(vectors, mask)
    kept = collapse_near_duplicates(sims, mask, config.near_duplicate_threshold)
    pair_sim = sims[:, iu, ju]
    pair_ok = kept[:, iu] & kept[:, ju]
    open_prompts: BoolArray = np.asarray(pair_ok.any(axis=1), dtype=bool)
    flat = vectors.reshape(-1, d)
    nearest: FloatArray | None = None  # each response's highest cosine to a labelled response
    chosen_p: list[IntArray] = []
    chosen_i: list[IntArray] = []
    chosen_j: list[IntArray] = []
    x_parts: list[FloatArray] = []
    y_parts: list[BoolArray] = []
    spent = 0
    while spent < budget and open_prompts.any():
        probability: FloatArray | None = None
        if y_parts:
            model = fit(np.vstack(x_parts), np.concatenate(y_parts), l2=config.l2)
            probability = model.pair_probabilities(vectors, iu, ju)
        scores = priority(
            pair_sim,
            probability,
            None if nearest is None else nearest[:, iu],
            None if nearest is None else nearest[:, ju],
            uncertainty_weight=config.uncertainty_weight,
            novelty_weight=config.novelty_weight,
        )
        scores = np.where(pair_ok & open_prompts[:, None], scores, -np.inf)
        best = np.argmax(scores, axis=1)  # the first best: the lowest (i, j), as select_batch
        best_score = scores[np.arange(p_count), best]
        take = min(config.round_size, budget - spent, int(open_prompts.sum()))
        rows = np.argsort(-best_score, kind="stable")[:take]
        seq = Pairs(train[rows], iu[best[rows]].astype(np.int64), ju[best[rows]].astype(np.int64))
        labels = annotator.label(seq)
        x_parts.append(features(pool.vectors[seq.prompt, seq.i], pool.vectors[seq.prompt, seq.j]))
        y_parts.append(labels.a_won)
        chosen_p.append(seq.prompt)
        chosen_i.append(seq.i)
        chosen_j.append(seq.j)
        open_prompts[rows] = False
        labelled = np.vstack([vectors[rows, seq.i], vectors[rows, seq.j]])
        closest = (flat @ labelled.T).max(axis=1).reshape(p_count, k)
        nearest = closest if nearest is None else np.maximum(nearest, closest)
        spent += take
    empty = np.zeros(0, dtype=np.int64)
    return Pairs(
        np.concatenate(chosen_p) if chosen_p else empty,
        np.concatenate(chosen_i) if chosen_i else empty,
        np.concatenate(chosen_j) if chosen_j else empty,
    )


def curve(
    pool: Pool,
    seq: Pairs,
    annotator: Annotator,
    evaluation: tuple[FloatArray, BoolArray],
    checkpoints: Sequence[int],
    l2: float,
) -> Curve:
    """The reward model's held-out accuracy and the labels' quality after the first n labels, per n."""
    labels = annotator.label(seq)
    sims = annotator.similarity(seq)
    x = features(pool.vectors[seq.prompt, seq.i], pool.vectors[seq.prompt, seq.j])
    eval_x, eval_y = evaluation
    acc, err, decided_err, ties, mean_sim = [], [], [], [], []
    for n in checkpoints:
        model = fit(x[:n], labels.a_won[:n], l2=l2)
        acc.append(accuracy(eval_y, model.probability(eval_x)))
        err.append(float(np.mean(labels.wrong[:n])))
        decided_err.append(float(labels.wrong[:n].sum() / max(1, int((~labels.tie[:n]).sum()))))
        ties.append(float(np.mean(labels.tie[:n])))
        mean_sim.append(float(np.mean(sims[:n])))
    return Curve(*(np.asarray(v) for v in (acc, err, decided_err, ties, mean_sim)))


def spendable(pool: Pool, prompts: IntArray, threshold: float | None) -> int:
    """How many of these prompts keep a pair after near-duplicate collapse (one label each at most)."""
    sims = similarities(pool.vectors[prompts], pool.mask[prompts])
    kept = collapse_near_duplicates(sims, pool.mask[prompts], threshold)
    return int((kept.sum(axis=1) >= 2).sum())


def run(pool: Pool, config: Config, progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Simulate every strategy over ``config.repeats`` repeats; ``progress(done, total)`` after each run."""
    # The similarity noise's default ramp comes from this data's cosines; the result keeps the resolved model.
    config = replace(config, noise=config.noise.resolved(pair_similarities(pool)))
    checkpoints = config.checkpoints()
    total = config.repeats * len(config.strategies)
    curves: dict[str, list[Curve]] = {s: [] for s in config.strategies}
    infos: list[RepeatInfo] = []
    for repeat in range(config.repeats):
        train, held = split(pool.size, config.held_out, config.seed, repeat)
        available = spendable(pool, train, config.near_duplicate_threshold)
        if available < config.full_budget:
            raise ValueError(
                f"the full budget of {config.full_budget} labels needs as many training prompts with a pair, "
                f"but repeat {repeat} has {available} (one label per prompt; {len(held)} prompts held out)"
            )
        evaluation = held_out_comparisons(pool, held)
        if len(evaluation[1]) == 0:
            raise ValueError(f"repeat {repeat}: the held-out prompts have no decided pair to evaluate on")
        infos.append(RepeatInfo(len(train), len(held), len(evaluation[1])))
        annotator = Annotator(pool, config.noise, config.seed, repeat)
        for strategy in config.strategies:
            if strategy == "active":
                seq = active_sequence(pool, train, annotator, config, config.full_budget)
            else:
                seq = static_sequence(pool, train, strategy, config, repeat)
            curves[strategy].append(curve(pool, seq, annotator, evaluation, checkpoints, config.l2))
            if progress is not None:
                progress(sum(len(c) for c in curves.values()), total)
    return SimulationResult(config, checkpoints, tuple(infos), {s: tuple(c) for s, c in curves.items()})


@dataclass(frozen=True)
class SimilarityBin:
    """Pairs whose cosine similarity falls in [low, high]: how many, and how many the judge tied."""

    low: float
    high: float
    pairs: int
    ties: int


def pair_similarities(pool: Pool) -> FloatArray:
    """The cosine similarity of every within-prompt pair of responses, prompt by prompt."""
    k = pool.mask.shape[1]
    iu, ju = np.triu_indices(k, k=1)
    ok = pool.mask[:, iu] & pool.mask[:, ju]
    sims: FloatArray = similarities(pool.vectors, pool.mask)[:, iu, ju][ok]
    return sims


def tie_rate_by_similarity(pool: Pool, bins: int = 5) -> list[SimilarityBin]:
    """Every within-prompt pair, binned by cosine similarity into equal-count bins (quintiles by default)."""
    k = pool.mask.shape[1]
    iu, ju = np.triu_indices(k, k=1)
    ok = pool.mask[:, iu] & pool.mask[:, ju]
    s = pair_similarities(pool)
    t = truth(pool.scores[:, iu][ok], pool.scores[:, ju][ok]) == 0
    edges = np.quantile(s, np.linspace(0.0, 1.0, bins + 1))
    which = np.clip(np.searchsorted(edges[1:-1], s, side="right"), 0, bins - 1)
    return [
        SimilarityBin(float(edges[b]), float(edges[b + 1]), int((which == b).sum()), int(t[which == b].sum()))
        for b in range(bins)
    ]
