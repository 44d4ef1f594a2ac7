"""Requeues and label-error suspects: extra labels spent from the budget, review requests, out-of-fold
reward-model probabilities per pair.

- ``project.max_extra_labels_per_pair`` (default 1) caps the labels a pair may be asked for beyond
  ``annotations_per_pair``; ``pair.extra_labels`` counts them; ``project_budget.extra_labels`` counts them
  against the budget (app/queue/budget.py), so ``real_queue_claim`` changes: it releases a pair only while
  its labels fit beside the released pairs' and the extras (frozen copy ``migrations/sql/c8d9e0f10500/``).
- ``pair.review_requested_at`` / ``review_request_note``: a data team sent the pair to the review queue.
- ``pair.model_p_a`` / ``model_version``: the reward model's out-of-fold P(response_a wins).

Revision ID: c8d9e0f10500
Revises: e4a5b6c70400
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import sqlfunctions

revision: str = "c8d9e0f10500"
down_revision: str | None = "e4a5b6c70400"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_extra_labels_per_pair", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.create_check_constraint(
            "max_extra_labels_per_pair_non_negative", "max_extra_labels_per_pair >= 0"
        )
    with op.batch_alter_table("project_budget", schema=None) as batch_op:
        batch_op.add_column(sa.Column("extra_labels", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint("extra_labels_non_negative", "extra_labels >= 0")
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("review_request_note", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("extra_labels", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("model_p_a", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("model_version", sa.Integer(), nullable=True))
    if _postgres():
        sqlfunctions.install(op, sqlfunctions.frozen(revision))


def downgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_column("model_version")
        batch_op.drop_column("model_p_a")
        batch_op.drop_column("extra_labels")
        batch_op.drop_column("review_request_note")
        batch_op.drop_column("review_requested_at")
    with op.batch_alter_table("project_budget", schema=None) as batch_op:
        batch_op.drop_constraint("extra_labels_non_negative", type_="check")
        batch_op.drop_column("extra_labels")
    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_constraint("max_extra_labels_per_pair_non_negative", type_="check")
        batch_op.drop_column("max_extra_labels_per_pair")
    if _postgres():
        sqlfunctions.install(op, sqlfunctions.frozen("b1d2e3f40100"))
