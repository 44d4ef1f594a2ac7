"""Simulation jobs (POST /v1/simulations): one row per budget simulation, owned by the principal that asked.

Revision ID: f5b6c7d80600
Revises: c8d9e0f10500
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f5b6c7d80600"
down_revision: str | None = "c8d9e0f10500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "simulation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_by_principal_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=500), nullable=False),
        sa.Column("input_name", sa.String(length=200), nullable=False),
        sa.Column("input_file", sa.String(length=32), nullable=False),
        sa.Column("input_sha256", sa.String(length=64), nullable=False),
        sa.Column("input_bytes", sa.Integer(), nullable=False),
        sa.Column("input_format", sa.String(length=16), nullable=False),
        sa.Column("prompts", sa.Integer(), nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_principal_id"],
            ["principal.id"],
            name=op.f("fk_simulation_created_by_principal_id_principal"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulation")),
    )
    op.create_index(
        "ix_simulation_created_by_principal_id", "simulation", ["created_by_principal_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_simulation_created_by_principal_id", table_name="simulation")
    op.drop_table("simulation")
