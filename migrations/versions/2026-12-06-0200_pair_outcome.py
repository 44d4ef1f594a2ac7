"""A pair's stored outcome by the one rule of app/labels/outcome.py, in place of the plurality majority.

`pair.majority_choice` / `pair.majority_tied` held a plurality vote that could disagree with what exports
decide (labels a, a, tie, both_bad showed "a" as the majority and were left out of exports as tied).
`pair.outcome` holds the outcome the quality aggregation computes with the exports' rule: "a", "b",
"tie", "both_bad", or "undecided"; null until the pair is aggregated. Every stored snapshot is dropped so
the next `quality.aggregate_stale` sweep recomputes each project with labels.

Revision ID: c2e3f4a50200
Revises: b1d2e3f40100
Create Date: 2026-12-06 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c2e3f4a50200"
down_revision: str | None = "b1d2e3f40100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch_op.drop_column("majority_choice")
        batch_op.drop_column("majority_tied")
    op.execute("UPDATE pair SET agreement = NULL")
    op.execute("DELETE FROM quality_snapshot")


def downgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(sa.Column("majority_choice", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("majority_tied", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.drop_column("outcome")
    op.execute("DELETE FROM quality_snapshot")
