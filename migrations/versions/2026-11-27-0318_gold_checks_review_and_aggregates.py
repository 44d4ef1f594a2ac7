"""Gold checks, reviews, per-pair aggregates (majority, Dawid-Skene) and annotator reliability.

Revision ID: 6a8ba68c63c8
Revises: 3a216ba448bb
Create Date: 2026-11-27 03:18:48.194192
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a8ba68c63c8"
down_revision: str | None = "3a216ba448bb"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "annotator_quality",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("reliability", sa.Float(), nullable=True),
        sa.Column("agreement_with_majority", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["project.id"],
            name=op.f("fk_annotator_quality_project_id_project"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotator_quality")),
        sa.UniqueConstraint(
            "project_id", "annotator", name=op.f("uq_annotator_quality_project_id_annotator")
        ),
    )
    op.create_table(
        "pair_review",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pair_id", sa.Uuid(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pair.id"], name=op.f("fk_pair_review_pair_id_pair"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pair_review")),
    )
    with op.batch_alter_table("pair_review", schema=None) as batch_op:
        batch_op.create_index("ix_pair_review_pair", ["pair_id"], unique=False)

    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gold_answer", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("majority_choice", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("majority_tied", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("agreement", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ds_choice", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("ds_posterior", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("review_verdict", sa.String(length=16), nullable=True))

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gold_rate", sa.Float(), nullable=False, server_default="0.1"))
        batch_op.add_column(sa.Column("gold_min_accuracy", sa.Float(), nullable=False, server_default="0.7"))
        batch_op.add_column(
            sa.Column("review_agreement_threshold", sa.Float(), nullable=False, server_default="0.6")
        )


def downgrade() -> None:

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("review_agreement_threshold")
        batch_op.drop_column("gold_min_accuracy")
        batch_op.drop_column("gold_rate")

    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_column("review_verdict")
        batch_op.drop_column("ds_posterior")
        batch_op.drop_column("ds_choice")
        batch_op.drop_column("agreement")
        batch_op.drop_column("majority_tied")
        batch_op.drop_column("majority_choice")
        batch_op.drop_column("gold_answer")

    with op.batch_alter_table("pair_review", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_review_pair")

    op.drop_table("pair_review")
    op.drop_table("annotator_quality")
