"""Label-error suspects: decided pairs whose recorded winner is probably wrong, and asking about them again.

Two independent pieces of evidence weigh on each decided (a response won), non-gold, unreviewed pair:

- **the reward model** (app/active/reward_model.py), which sees only the two responses: its out-of-fold
  P(the recorded winner wins), stored on the pair by the fit that had the pair in its training set
  (``pair.model_p_a``, from a model fitted without this pair's label), else the newest model's prediction
  (fitted before the label arrived, so it never saw it either);
- **the labels**, which see only the annotators: the Dawid–Skene posterior of the recorded result, which
  folds the votes (agreement) and each voter's reliability together, as of the last quality aggregation.

They combine as independent evidence: logit(p_right) = logit(p_model) + logit(p_labels), where a missing one
counts as 0 (p = 0.5). A pair is a suspect when p_right is below ``max_probability`` (default 0.5: the
evidence says the recorded winner is more likely wrong than right); suspects are ranked by p_right, lowest
first, each with its reasons.

A data team acts on one with ``requeue``: ``label`` asks one more label (a slot of its own, handed out
before new pairs, never to an annotator who already labelled the pair; it spends one label of the budget,
at most ``project.max_extra_labels_per_pair`` per pair), ``review`` puts it in the review queue.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from app.active import reward_model
from app.active import service as active
from app.audit import service as audit
from app.auth.context import Caller
from app.embeddings import repository as embedding_repository
from app.embeddings.codec import from_bytes
from app.errors import Conflict, NotFound
from app.labels import outcome
from app.labels.repository import SIDE_COLUMNS
from app.pairs.models import AnnotatorQuality, Pair, PairSlot, PairStatus
from app.projects.models import Project
from app.prompts.models import Response
from app.queue import budget
from app.queue import repository as queue_repository
from app.queue.models import Label

DEFAULT_MAX_PROBABILITY = 0.5
_CLIP = 1e-6

ReasonCode = Literal[
    "model_disagrees", "labels_disagree", "split_vote", "single_label", "unreliable_annotators"
]


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    detail: str


@dataclass(frozen=True)
class Suspect:
    """A decided pair and how likely its recorded winner is right."""

    pair_id: uuid.UUID
    prompt_id: uuid.UUID
    result: str  # "a" / "b": the pair's response_a / response_b won
    winner_response_id: uuid.UUID
    labels: int
    agreement: float | None
    model_probability: float | None  # P(recorded winner) by the reward model (None: no model yet)
    label_probability: float | None  # Dawid–Skene posterior of the recorded result (None: not computed)
    probability_right: float
    reasons: list[Reason]
    extra_labels: int
    extra_label_pending: bool
    review_requested: bool


@dataclass(frozen=True)
class SuspectList:
    items: list[Suspect]
    total: int  # suspects below the threshold, of which items are the first `limit`
    decided_pairs: int  # decided, non-gold, unreviewed pairs weighed
    model_version: int | None


def probability_right(model: float | None, labels: float | None) -> float:
    """Independent evidence combined: the log-odds add (a missing piece of evidence is 0.5)."""
    log_odds = 0.0
    for p in (model, labels):
        if p is not None:
            q = min(max(p, _CLIP), 1.0 - _CLIP)
            log_odds += math.log(q / (1.0 - q))
    return 1.0 / (1.0 + math.exp(-log_odds))


def reasons_for(
    *,
    model: float | None,
    labels: float | None,
    decided: outcome.Outcome,
    voter_reliability: float | None,
    review_threshold: float,
    reliability_floor: float,
) -> list[Reason]:
    """Why a pair is doubted, strongest evidence first (the reasons that apply; possibly none)."""
    found: list[Reason] = []
    if model is not None and model < 0.5:
        found.append(Reason("model_disagrees", f"the reward model gives the recorded winner p = {model:.2f}"))
    if labels is not None and labels < 0.5:
        found.append(Reason("labels_disagree", f"Dawid–Skene gives the recorded result p = {labels:.2f}"))
    if decided.agreement is not None and decided.agreement < review_threshold:
        found.append(
            Reason(
                "split_vote",
                f"{decided.agreement:.0%} of {decided.labels} labels chose the winner "
                f"(the review threshold is {review_threshold:.0%})",
            )
        )
    if decided.labels == 1:
        found.append(Reason("single_label", "one label decides this pair"))
    if voter_reliability is not None and voter_reliability < reliability_floor:
        found.append(
            Reason(
                "unreliable_annotators",
                f"the winner's voters have Dawid–Skene reliability {voter_reliability:.2f} "
                f"(below the project's gold_min_accuracy {reliability_floor:.2f})",
            )
        )
    return found


@dataclass
class _Candidate:
    pair: Pair
    sides: list[tuple[str, str]] = field(default_factory=list)  # (annotator, pair side)


def _candidates(session: Session, project: Project) -> list[_Candidate]:
    """The project's labelled, non-gold, unreviewed pairs with their labels in pair terms."""
    pairs = session.scalars(
        select(Pair)
        .where(
            Pair.project_id == project.id,
            Pair.gold_answer.is_(None),
            Pair.review_verdict.is_(None),
            Pair.labels_count > 0,
        )
        .order_by(Pair.id)
    ).all()
    by_id = {pair.id: _Candidate(pair) for pair in pairs}
    for pair_id, annotator, choice, shown_first, a_id in session.execute(
        select(Label.pair_id, Label.annotator, *SIDE_COLUMNS)
        .join(Pair, Pair.id == Label.pair_id)
        .where(
            Label.project_id == project.id,
            Pair.gold_answer.is_(None),
            Pair.review_verdict.is_(None),
        )
    ):
        if pair_id in by_id:
            by_id[pair_id].sides.append((annotator, outcome.pair_side(choice, shown_first, a_id)))
    return list(by_id.values())


def _predicted_p_a(session: Session, project: Project, pairs: list[Pair]) -> dict[uuid.UUID, float]:
    """P(response_a wins) by the newest reward model, for pairs it has no stored out-of-fold value for."""
    fit = active.latest(session, project.id)
    if fit is None or not pairs or fit.features != "diff":
        return {}
    ra, rb = aliased(Response), aliased(Response)
    hashes = dict(
        (pair_id, (a, b))
        for pair_id, a, b in session.execute(
            select(Pair.id, ra.text_sha256, rb.text_sha256)
            .join(ra, ra.id == Pair.response_a_id)
            .join(rb, rb.id == Pair.response_b_id)
            .where(Pair.id.in_([p.id for p in pairs]))
        )
    )
    vectors = embedding_repository.vectors_for(
        session, fit.embedding_model, sorted({h for pair in hashes.values() for h in pair})
    )
    usable = [
        pid for pid, (a, b) in hashes.items() if a in vectors and b in vectors and vectors[a].dim == fit.dim
    ]
    if not usable:
        return {}
    a_rows = np.stack([from_bytes(vectors[hashes[p][0]].vector, fit.dim) for p in usable])
    b_rows = np.stack([from_bytes(vectors[hashes[p][1]].vector, fit.dim) for p in usable])
    probabilities = active.model_of(fit).probability(reward_model.features(a_rows, b_rows))
    return {pid: float(p) for pid, p in zip(usable, probabilities, strict=True)}


def _open_slots(session: Session, pair_ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Pairs with a slot still waiting for its label."""
    found: set[uuid.UUID] = set()
    for start in range(0, len(pair_ids), 500):
        found.update(
            session.scalars(
                select(PairSlot.pair_id)
                .where(PairSlot.pair_id.in_(pair_ids[start : start + 500]), PairSlot.done.is_(False))
                .distinct()
            )
        )
    return found


def suspects(
    session: Session,
    project: Project,
    *,
    max_probability: float = DEFAULT_MAX_PROBABILITY,
    limit: int = 50,
) -> SuspectList:
    """The project's decided pairs whose recorded winner is right with probability below
    ``max_probability``, lowest first (see the module docstring)."""
    candidates = _candidates(session, project)
    missing = [c.pair for c in candidates if c.pair.model_p_a is None]
    predicted = _predicted_p_a(session, project, missing)
    reliability = {
        q.annotator: q.reliability
        for q in session.scalars(select(AnnotatorQuality).where(AnnotatorQuality.project_id == project.id))
        if q.reliability is not None
    }
    pending = _open_slots(session, [c.pair.id for c in candidates])
    found: list[Suspect] = []
    decided_pairs = 0
    for candidate in candidates:
        pair = candidate.pair
        decided = outcome.decide(
            outcome.count(side for _, side in candidate.sides), None, project.annotations_per_pair
        )
        if decided.winner is None or decided.result is None:
            continue
        decided_pairs += 1
        p_a = pair.model_p_a if pair.model_p_a is not None else predicted.get(pair.id)
        model = None if p_a is None else (p_a if decided.result == "a" else 1.0 - p_a)
        posterior = (pair.ds_posterior or {}).get(decided.result)
        labels = None if posterior is None else float(posterior)
        p_right = probability_right(model, labels)
        if p_right >= max_probability:
            continue
        voters = [
            reliability[a] for a, side in candidate.sides if side == decided.result and a in reliability
        ]
        found.append(
            Suspect(
                pair_id=pair.id,
                prompt_id=pair.prompt_id,
                result=decided.result,
                winner_response_id=pair.response_a_id if decided.result == "a" else pair.response_b_id,
                labels=decided.labels,
                agreement=decided.agreement,
                model_probability=None if model is None else round(model, 6),
                label_probability=None if labels is None else round(labels, 6),
                probability_right=round(p_right, 6),
                reasons=reasons_for(
                    model=model,
                    labels=labels,
                    decided=decided,
                    voter_reliability=sum(voters) / len(voters) if voters else None,
                    review_threshold=project.review_agreement_threshold,
                    reliability_floor=project.gold_min_accuracy,
                ),
                extra_labels=pair.extra_labels,
                extra_label_pending=pair.id in pending,
                review_requested=pair.review_requested_at is not None,
            )
        )
    found.sort(key=lambda s: (s.probability_right, s.pair_id))
    fit = active.latest(session, project.id)
    return SuspectList(found[:limit], len(found), decided_pairs, fit.version if fit else None)


RequeueAction = Literal["label", "review"]


@dataclass(frozen=True)
class Requeued:
    pair: Pair
    action: RequeueAction
    changed: bool  # False: a retry (the label was already asked for, the review already requested)
    extra_label_pending: bool
    budget: int | None
    budget_committed: int


def requeue(
    session: Session,
    caller: Caller,
    project: Project,
    pair_id: uuid.UUID,
    action: RequeueAction,
    note: str | None,
    now: datetime,
) -> Requeued:
    """Ask one more label on a labelled pair, or send it to review. Idempotent: while an asked-for label
    is still awaited (or a review still pending), asking again changes nothing."""
    pair = session.scalars(
        select(Pair).where(Pair.id == pair_id, Pair.project_id == project.id).with_for_update()
    ).first()
    if pair is None:
        raise NotFound(f"no pair {pair_id} in project {project.id}")
    if pair.gold_answer is not None:
        raise Conflict("a gold pair has a known answer; it is not requeued", field="pair_id")
    if pair.labels_count == 0:
        raise Conflict("this pair has no label yet; it is in the queue already", field="pair_id")
    changed = False
    if action == "review":
        if pair.review_verdict is not None:
            raise Conflict("this pair was reviewed already; its verdict decides it", field="pair_id")
        if pair.review_requested_at is None:
            pair.review_requested_at, pair.review_request_note, changed = now, note, True
    else:
        changed = _ask_one_more_label(session, project, pair)
    if changed:
        session.flush()
        audit.record(
            session,
            caller,
            "pair.requeued",
            "pair",
            pair.id,
            {"action": action, "note": note, "extra_labels": pair.extra_labels},
        )
    spent = queue_repository.spent(session, project.id)
    return Requeued(
        pair=pair,
        action=action,
        changed=changed,
        extra_label_pending=bool(_open_slots(session, [pair.id])),
        budget=project.budget,
        budget_committed=budget.committed(spent, project.annotations_per_pair),
    )


def _ask_one_more_label(session: Session, project: Project, pair: Pair) -> bool:
    """A new slot on the pair, spending one label of the budget; False when one is still awaited."""
    if _open_slots(session, [pair.id]):
        return False
    if pair.extra_labels >= project.max_extra_labels_per_pair:
        raise Conflict(
            f"this pair has had {pair.extra_labels} extra label(s), the project's "
            f"max_extra_labels_per_pair ({project.max_extra_labels_per_pair}); send it to review instead",
            field="action",
        )
    if not queue_repository.take_extra_label(session, project.id):
        raise Conflict(
            "the project's budget has no label left for this; raise the budget or send the pair to review",
            field="action",
        )
    next_slot = session.scalar(select(func.max(PairSlot.slot)).where(PairSlot.pair_id == pair.id))
    # Released: handed out before new pairs, and without spending the budget again at its claim.
    session.add(
        PairSlot(
            project_id=project.id,
            pair_id=pair.id,
            slot=(next_slot if next_slot is not None else -1) + 1,
            priority=pair.priority,
            released=True,
            done=False,
        )
    )
    pair.extra_labels += 1
    if pair.status == PairStatus.DONE:
        pair.status = PairStatus.RELEASED
    return True
