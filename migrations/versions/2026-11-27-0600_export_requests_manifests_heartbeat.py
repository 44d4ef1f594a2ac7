"""Exports: the whole request (style, compression, since, filters), manifest, storage location, heartbeat.

Revision ID: e4b0c7a1d6f2
Revises: c1a1m0000500
Create Date: 2026-11-27 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4b0c7a1d6f2"
down_revision: str | None = "c1a1m0000500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("export_run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("style", sa.String(length=16), nullable=False, server_default="standard")
        )
        batch_op.add_column(
            sa.Column("compression", sa.String(length=16), nullable=False, server_default="none")
        )
        batch_op.add_column(sa.Column("since_export_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("since_snapshot_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("filters", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("location", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("manifest", sa.JSON(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_export_run_since_export_id_export_run"),
            "export_run",
            ["since_export_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_export_run_project_id", ["project_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("export_run", schema=None) as batch_op:
        batch_op.drop_index("ix_export_run_project_id")
        batch_op.drop_constraint(batch_op.f("fk_export_run_since_export_id_export_run"), type_="foreignkey")
        for column in (
            "manifest",
            "location",
            "bytes",
            "heartbeat_at",
            "started_at",
            "attempts",
            "filters",
            "since_snapshot_at",
            "since_export_id",
            "compression",
            "style",
        ):
            batch_op.drop_column(column)
