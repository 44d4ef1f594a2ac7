"""Reward models: one versioned row per Bradley–Terry fit on a project's decided pairs (app/active).

Revision ID: e4a5b6c70400
Revises: d3f4a5b60300
Create Date: 2026-12-06 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a5b6c70400"
down_revision: str | None = "d3f4a5b60300"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reward_model",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("embedding_model", sa.String(length=500), nullable=False),
        sa.Column("features", sa.String(length=32), nullable=False),
        sa.Column("l2", sa.Float(), nullable=False),
        sa.Column("pairs_used", sa.Integer(), nullable=False),
        sa.Column("labels_used", sa.Integer(), nullable=False),
        sa.Column("cv_folds", sa.Integer(), nullable=False),
        sa.Column("cv_accuracy", sa.Float(), nullable=True),
        sa.Column("cv_log_loss", sa.Float(), nullable=True),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_reward_model_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_model")),
        sa.UniqueConstraint("project_id", "version", name=op.f("uq_reward_model_project_id_version")),
    )


def downgrade() -> None:
    op.drop_table("reward_model")
