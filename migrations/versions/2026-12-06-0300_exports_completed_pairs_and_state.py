"""Exports of completed pairs by default, with incremental state; schedules record slots with nothing new.

`export_run.include_partial`: export pairs without all their labels too (default: completed pairs only).
`export_schedule.last_skip_reason`: an incremental schedule's due slot that found nothing changed since the
previous export makes no export and says so here. (The incremental state itself is a file beside each
export, named in its manifest.)

Revision ID: d3f4a5b60300
Revises: c2e3f4a50200
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d3f4a5b60300"
down_revision: str | None = "c2e3f4a50200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("export_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("include_partial", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("export_run", schema=None) as batch_op:
        batch_op.alter_column("include_partial", server_default=None)
    with op.batch_alter_table("export_schedule", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_skip_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("export_schedule", schema=None) as batch_op:
        batch_op.drop_column("last_skip_reason")
    with op.batch_alter_table("export_run", schema=None) as batch_op:
        batch_op.drop_column("include_partial")
