"""The project's reward model: its training set from decided pairs, fitting, storing versions, refits.

The training set is every non-gold pair a response won (app/labels/outcome.py: ties and both_bad are no
comparison), each response's stored embedding under the project's model, and a weight per pair: the
Dawid–Skene posterior of the winner when the last quality aggregation computed one, else 1 (a verdict: 1).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from app.active import acquisition, reward_model
from app.active.models import RewardModelFit
from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes, to_bytes
from app.labels import outcome
from app.labels import repository as label_repository
from app.pairs.models import Pair
from app.projects.models import Project
from app.prompts.models import Response
from app.selection.strategies import similarities

log = logging.getLogger(__name__)
REFIT_TASK = "active.refit_reward_model"


@dataclass(frozen=True)
class TrainingSet:
    """Comparisons of a project's decided pairs: features (n, d), whether response_a won, weights."""

    pair_ids: list[uuid.UUID]
    x: npt.NDArray[np.float64]
    a_won: npt.NDArray[np.bool_]
    weights: npt.NDArray[np.float64]
    labels: int


def training_set(session: Session, project: Project) -> TrainingSet:
    """The decided (a response won) non-gold pairs of the project whose two responses have vectors."""
    ra, rb = aliased(Response), aliased(Response)
    pairs = session.execute(
        select(Pair, ra.text_sha256, rb.text_sha256)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(Pair.project_id == project.id, Pair.gold_answer.is_(None), Pair.labels_count > 0)
        .order_by(Pair.id)
    ).all()
    counts = label_repository.counts_by_pair(session, [pair.id for pair, _, _ in pairs])
    vectors = embedding_repository.vectors_for(
        session, project.embedding_model, [sha for _, a, b in pairs for sha in (a, b)]
    )
    ids: list[uuid.UUID] = []
    a_rows: list[npt.NDArray[np.float32]] = []
    b_rows: list[npt.NDArray[np.float32]] = []
    won: list[bool] = []
    weights: list[float] = []
    labels = 0
    for pair, a_sha, b_sha in pairs:
        pair_counts = counts.get(pair.id, outcome.NO_LABELS)
        decided = outcome.decide(pair_counts, pair.review_verdict, project.annotations_per_pair)
        if decided.winner is None or a_sha not in vectors or b_sha not in vectors:
            continue
        ids.append(pair.id)
        a_rows.append(from_bytes(vectors[a_sha].vector, vectors[a_sha].dim))
        b_rows.append(from_bytes(vectors[b_sha].vector, vectors[b_sha].dim))
        won.append(decided.winner == outcome.A)
        posterior = (pair.ds_posterior or {}).get(decided.result or "") if not decided.reviewed else None
        weights.append(float(posterior) if posterior is not None else 1.0)
        labels += decided.labels
    if not ids:
        return TrainingSet([], np.zeros((0, 0)), np.zeros(0, dtype=bool), np.zeros(0), 0)
    x = reward_model.features(np.stack(a_rows), np.stack(b_rows))
    return TrainingSet(ids, x, np.array(won), np.array(weights), labels)


def decided_pairs(session: Session, project_id: uuid.UUID) -> int:
    """Non-gold pairs a response won, as of the last quality aggregation (pair.outcome)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(Pair)
            .where(Pair.project_id == project_id, Pair.gold_answer.is_(None), Pair.outcome.in_(("a", "b")))
        )
        or 0
    )


def latest(session: Session, project_id: uuid.UUID) -> RewardModelFit | None:
    """The project's newest fit, if any."""
    return session.scalars(
        select(RewardModelFit)
        .where(RewardModelFit.project_id == project_id)
        .order_by(RewardModelFit.version.desc())
        .limit(1)
    ).first()


def history(session: Session, project_id: uuid.UUID) -> list[RewardModelFit]:
    """Every fit of the project, newest first."""
    return list(
        session.scalars(
            select(RewardModelFit)
            .where(RewardModelFit.project_id == project_id)
            .order_by(RewardModelFit.version.desc())
        )
    )


def model_of(fit: RewardModelFit) -> reward_model.RewardModel:
    """The stored weights as a model."""
    weights = np.frombuffer(fit.weights, dtype="<f4").astype(np.float64)
    return reward_model.RewardModel(weights, fit.features)


def fit_project(session: Session, project: Project, now: datetime) -> RewardModelFit | None:
    """Fit the reward model on the project's decided pairs and store it as the next version; None when
    there are fewer than REAL_REWARD_MIN_PAIRS of them or they all went one way (nothing to tell apart)."""
    settings = get_settings()
    data = training_set(session, project)
    if len(data.pair_ids) < settings.reward_min_pairs or data.a_won.all() or not data.a_won.any():
        return None
    model = reward_model.fit(data.x, data.a_won, data.weights, l2=settings.reward_l2)
    cv = reward_model.cross_validate(
        data.x, data.a_won, data.weights, folds=settings.reward_cv_folds, l2=settings.reward_l2, seed=0
    )
    version = (session.scalar(
        select(func.max(RewardModelFit.version)).where(RewardModelFit.project_id == project.id)
    ) or 0) + 1  # fmt: skip
    row = RewardModelFit(
        project_id=project.id,
        version=version,
        fitted_at=now,
        embedding_model=project.embedding_model,
        features=model.features,
        l2=settings.reward_l2,
        pairs_used=len(data.pair_ids),
        labels_used=data.labels,
        cv_folds=cv.folds,
        cv_accuracy=round(cv.accuracy, 6),
        cv_log_loss=round(cv.log_loss, 6),
        dim=int(model.weights.shape[0]),
        weights=to_bytes(model.weights),
    )
    session.add(row)
    # Each pair's out-of-fold P(response_a wins): the evidence the label-error suspects weigh
    # (app/active/suspects.py). One executemany.
    session.execute(
        update(Pair),
        [
            {"id": pair_id, "model_p_a": round(float(p), 6), "model_version": version}
            for pair_id, p in zip(data.pair_ids, cv.probabilities, strict=True)
        ],
    )
    session.flush()
    log.info(
        "active.reward_model_fitted",
        extra={"project_id": str(project.id), "version": version, "pairs": len(data.pair_ids)},
    )
    return row


def next_refit_at(current: RewardModelFit | None) -> int:
    """How many decided pairs make an automatic refit due: REAL_REWARD_MIN_PAIRS before the first fit;
    then REAL_REWARD_REFIT_EVERY_PAIRS more than the newest fit used, and at least REAL_REWARD_REFIT_GROWTH
    of them more."""
    settings = get_settings()
    if current is None:
        return settings.reward_min_pairs
    used = current.pairs_used
    return max(
        used + max(settings.reward_refit_every_pairs, math.ceil(settings.reward_refit_growth * used)),
        settings.reward_min_pairs,
    )


def schedule_refit_if_due(session: Session, project_id: uuid.UUID, decided_pairs: int) -> bool:
    """Ask for a refit after this unit of work commits when ``decided_pairs`` reached ``next_refit_at``."""
    if decided_pairs < next_refit_at(latest(session, project_id)):
        return False
    send_after_commit(session, REFIT_TASK, project_id=str(project_id))
    return True


def request_refit(session: Session, project: Project) -> None:
    """Fit now (after commit, in the background), whatever the count."""
    send_after_commit(session, REFIT_TASK, project_id=str(project.id))


# Similarities to labelled responses are computed in blocks of about this many floats.
_BLOCK_FLOATS = 4_000_000


def labelled_vectors(session: Session, project: Project) -> npt.NDArray[np.float64]:
    """Unit vectors of the responses of the project's labelled non-gold pairs (one per distinct text)."""
    ra, rb = aliased(Response), aliased(Response)
    hashes: set[str] = set()
    for a_sha, b_sha in session.execute(
        select(ra.text_sha256, rb.text_sha256)
        .select_from(Pair)
        .join(ra, ra.id == Pair.response_a_id)
        .join(rb, rb.id == Pair.response_b_id)
        .where(Pair.project_id == project.id, Pair.gold_answer.is_(None), Pair.labels_count > 0)
    ):
        hashes.update((a_sha, b_sha))
    stored = embedding_repository.vectors_for(session, project.embedding_model, sorted(hashes))
    if not stored:
        return np.zeros((0, 0))
    return reward_model.unit(np.stack([from_bytes(e.vector, e.dim) for e in stored.values()]))


def pair_scores(
    session: Session, project: Project, vectors: npt.ArrayLike, mask: npt.ArrayLike
) -> npt.NDArray[np.float64] | None:
    """The `active` priority (app/active/acquisition.py) of every candidate pair of stacked prompts,
    (P, k·(k−1)/2) in ``np.triu_indices(k, 1)`` order; None, which selection scores as `dissimilar`, until
    the project has a reward model for these vectors."""
    fit = latest(session, project.id)
    stacked = np.asarray(vectors, dtype=np.float64)
    valid = np.asarray(mask, dtype=bool)
    if (
        fit is None
        or fit.embedding_model != project.embedding_model
        or fit.features != "diff"
        or fit.dim != stacked.shape[2]
    ):
        return None
    p_count, k, dim = stacked.shape
    units = reward_model.unit(stacked.reshape(p_count * k, dim)).reshape(p_count, k, dim) * valid[:, :, None]
    iu, ju = np.triu_indices(k, k=1)
    sims = similarities(stacked, valid)[:, iu, ju]
    probability = model_of(fit).pair_probabilities(stacked, iu, ju)
    labelled = labelled_vectors(session, project)
    if len(labelled) == 0:
        return acquisition.priority(sims, probability)
    nearest = np.empty((p_count, k))
    block = max(1, _BLOCK_FLOATS // max(1, k * len(labelled)))
    for start in range(0, p_count, block):
        part = units[start : start + block]
        nearest[start : start + block] = (part @ labelled.T).max(axis=2)
    return acquisition.priority(sims, probability, nearest[:, iu], nearest[:, ju])
