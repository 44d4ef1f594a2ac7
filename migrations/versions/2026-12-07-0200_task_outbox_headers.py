"""The task outbox keeps the sender's log context (request id, project), so a resent task still names the
request that asked for it.

Revision ID: e1f2a3b40200
Revises: a1c2e3f40100
Create Date: 2026-12-07 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e1f2a3b40200"
down_revision: str | None = "a1c2e3f40100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_outbox") as batch:
        batch.add_column(sa.Column("headers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_outbox") as batch:
        batch.drop_column("headers")
