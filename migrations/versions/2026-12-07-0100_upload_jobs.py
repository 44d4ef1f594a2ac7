"""Upload jobs (issue 15): a streamed JSONL upload's counters on its job, and its refused lines.

Revision ID: a1c2e3f40100
Revises: d9e0f1a20700
Create Date: 2026-12-07 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c2e3f40100"
down_revision: str | None = "d9e0f1a20700"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("lines", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("duplicates", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("failed_lines", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "job_error",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("field", sa.String(length=512), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_job_error_job_id_job"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_error")),
    )
    op.create_index("ix_job_error_job_line", "job_error", ["job_id", "line"])


def downgrade() -> None:
    op.drop_index("ix_job_error_job_line", table_name="job_error")
    op.drop_table("job_error")
    with op.batch_alter_table("job") as batch:
        batch.drop_column("received_at")
        batch.drop_column("failed_lines")
        batch.drop_column("duplicates")
        batch.drop_column("lines")
