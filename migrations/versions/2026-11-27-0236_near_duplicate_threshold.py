"""Per-project near-duplicate threshold for collapsing responses before pairing (default 0.98).

Revision ID: b9b5b704f4c7
Revises: b1ec49662473
Create Date: 2026-11-27 02:36:13.744129
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b9b5b704f4c7"
down_revision: str | None = "b1ec49662473"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(sa.Column("near_duplicate_threshold", sa.Float(), nullable=True))
    # Existing projects get the same default as new ones.
    op.execute("UPDATE project SET near_duplicate_threshold = 0.98")


def downgrade() -> None:

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("near_duplicate_threshold")
