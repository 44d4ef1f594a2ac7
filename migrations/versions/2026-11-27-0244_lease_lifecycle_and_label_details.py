"""Lease lifecycle (renewals, end time, skip reason) and label details (confidence, rationale, idempotency).

Revision ID: 3a216ba448bb
Revises: b9b5b704f4c7
Create Date: 2026-11-27 02:44:50.249918
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a216ba448bb"
down_revision: str | None = "b9b5b704f4c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("renewals", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("skip_reason", sa.Text(), nullable=True))

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rationale", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("request_sha256", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_label_annotator_idempotency_key"), ["annotator", "idempotency_key"]
        )


def downgrade() -> None:

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_label_annotator_idempotency_key"), type_="unique")
        batch_op.drop_column("request_sha256")
        batch_op.drop_column("idempotency_key")
        batch_op.drop_column("rationale")
        batch_op.drop_column("confidence")

    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_column("skip_reason")
        batch_op.drop_column("ended_at")
        batch_op.drop_column("renewals")
