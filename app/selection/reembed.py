"""Send a project's untouched prompts back to embedding, after its embedding model changed.

A prompt is untouched when none of its pairs has been released to an annotator: no claim, so no
assignment, no label and no budget spent. Those prompts lose their pairs (slots cascade), go back to
`pending` and are embedded again under the project's new model and paired afresh. A prompt with any
released pair keeps its pairs as they are, even when every lease on it expired unlabelled: its
assignments are the record of what annotators were shown, a stale lease holder should still get
`lease_expired` rather than a vanished assignment, and `pairs_released` (the budget counter) stays exact
without being wound back.

Vectors are keyed by (model, sha256(text)), so switching back to an earlier model finds its vectors
stored and only re-pairs.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.after_commit import send_after_commit
from app.pairs.models import Pair, PairSlot
from app.projects.models import Project
from app.prompts.models import Prompt, PromptStatus
from app.queue.models import Assignment, Label

log = logging.getLogger(__name__)

# Rows per DELETE/UPDATE: well under Postgres's 65,535 bind parameters per statement.
_ROWS_PER_STATEMENT = 1_000


def _lock_for_reembedding(session: Session, project_id: uuid.UUID) -> None:
    """Lock the project's prompts, then its unreleased pairs' slots (Postgres; SQLite serialises writers).

    Prompts first: a running build_pairs holds its prompts while it adds their pairs, so once these locks
    are ours every pair of the project is visible. Slots next, in the claim's own order (slot, pair,
    project): a claim skips locked slots, and one that locked a slot first is waited for, so no pair is
    released between the check below and the delete. The caller writes the project row only after this.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        select(Prompt.id).where(Prompt.project_id == project_id).order_by(Prompt.id).with_for_update()
    ).all()
    session.execute(
        select(PairSlot.id)
        .join(Pair, Pair.id == PairSlot.pair_id)
        .where(PairSlot.project_id == project_id, Pair.released_at.is_(None))
        .order_by(PairSlot.id)
        .with_for_update(of=PairSlot)
    ).all()


def untouched_prompt_ids(session: Session, project_id: uuid.UUID) -> list[uuid.UUID]:
    """The project's prompts none of whose pairs was ever released, claimed or labelled, oldest first."""
    touched = exists().where(
        Pair.prompt_id == Prompt.id,
        or_(
            Pair.released_at.is_not(None),
            exists().where(Assignment.pair_id == Pair.id),
            exists().where(Label.pair_id == Pair.id),
        ),
    )
    return list(
        session.scalars(
            select(Prompt.id).where(Prompt.project_id == project_id, ~touched).order_by(Prompt.id)
        )
    )


def reset_untouched_prompts(
    session: Session, project: Project, job_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Drop the untouched prompts' pairs, set them pending (under job_id), and send them through
    embedding and selection again after commit; returns their ids.

    Call it before writing the project row in the same unit of work (see _lock_for_reembedding); the task
    reads the project's model and strategy when it runs, after commit, so it sees the new ones.
    """
    _lock_for_reembedding(session, project.id)
    prompt_ids = untouched_prompt_ids(session, project.id)
    values: dict[str, object] = {"status": PromptStatus.PENDING}
    if job_id is not None:
        values["job_id"] = job_id
    for start in range(0, len(prompt_ids), _ROWS_PER_STATEMENT):
        chunk = prompt_ids[start : start + _ROWS_PER_STATEMENT]
        # pair_slot rows go with their pairs (ON DELETE CASCADE); untouched pairs have no assignments.
        session.execute(
            delete(Pair).where(Pair.prompt_id.in_(chunk)).execution_options(synchronize_session=False)
        )
        session.execute(
            update(Prompt)
            .where(Prompt.id.in_(chunk))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    chunk_size = get_settings().embed_chunk_prompts
    for start in range(0, len(prompt_ids), chunk_size):
        ids = [str(p) for p in prompt_ids[start : start + chunk_size]]
        send_after_commit(session, "embeddings.embed_prompts", prompt_ids=ids)
    log.info("selection.reset", extra={"project_id": str(project.id), "prompts": len(prompt_ids)})
    return prompt_ids


def reembed_project(session: Session, project: Project) -> int:
    """Re-embed and re-pair the project's untouched prompts after commit; returns how many were sent.

    The other prompts keep their pairs, but their response and prompt texts are sent to
    ``embeddings.embed_texts`` (vectors only, no pairing), so the neighbour indexes, near-duplicate prompts
    and redundant-pair detection see the whole project under the new model.
    """
    untouched = reset_untouched_prompts(session, project)
    reset = set(untouched)
    kept = [
        str(p)
        for p in session.scalars(select(Prompt.id).where(Prompt.project_id == project.id).order_by(Prompt.id))
        if p not in reset
    ]
    chunk_size = get_settings().embed_chunk_prompts
    for start in range(0, len(kept), chunk_size):
        send_after_commit(session, "embeddings.embed_texts", prompt_ids=kept[start : start + chunk_size])
    return len(untouched)
