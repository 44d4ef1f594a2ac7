"""A reviewer flag on principals; a per-project quality snapshot written by the quality.aggregate task.

Revision ID: 5c291bf23964
Revises: 6a8ba68c63c8
Create Date: 2026-11-27 04:46:41.755954
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c291bf23964"
down_revision: str | None = "6a8ba68c63c8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_snapshot",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labels_count_at_compute", sa.Integer(), nullable=False),
        sa.Column("labels", sa.Integer(), nullable=False),
        sa.Column("gold_labels", sa.Integer(), nullable=False),
        sa.Column("pairs_labelled", sa.Integer(), nullable=False),
        sa.Column("pairs_with_overlap", sa.Integer(), nullable=False),
        sa.Column("krippendorff_alpha", sa.Float(), nullable=True),
        sa.Column("fleiss", sa.JSON(), nullable=False),
        sa.Column("cohen", sa.JSON(), nullable=False),
        sa.Column("dawid_skene", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_quality_snapshot_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_quality_snapshot")),
    )
    with op.batch_alter_table("principal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reviewer", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("principal", schema=None) as batch_op:
        batch_op.drop_column("reviewer")
    op.drop_table("quality_snapshot")
