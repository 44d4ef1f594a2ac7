"""Claim path: pair_slot.released and an index in the claim's order; live-lease and gold-pair indexes.

The claim used to join pair to learn whether a slot's pair was released and sort every free slot of the
project; with `released` on the slot, the partial index below is the claim's ORDER BY, so the first free
slot is found without a sort.

Revision ID: c1a1m0000500
Revises: d4ecc1c24e6c
Create Date: 2026-11-27 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c1a1m0000500"
down_revision: str | None = "d4ecc1c24e6c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pair_slot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("released", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE pair_slot SET released = TRUE WHERE pair_id IN "
        "(SELECT id FROM pair WHERE released_at IS NOT NULL)"
    )
    with op.batch_alter_table("pair_slot", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_slot_claim")
        batch_op.create_index(
            "ix_pair_slot_claimable",
            ["project_id", sa.text("released DESC"), sa.text("priority DESC"), "id"],
            unique=False,
            postgresql_where=sa.text("NOT done"),
            sqlite_where=sa.text("NOT done"),
        )
        batch_op.create_index("ix_pair_slot_pair", ["pair_id"], unique=False)
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index(
            "ix_assignment_active_annotator",
            ["annotator", "lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.create_index(
            "ix_pair_project_gold",
            ["project_id", "id"],
            unique=False,
            postgresql_where=sa.text("gold_answer IS NOT NULL"),
            sqlite_where=sa.text("gold_answer IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_project_gold")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_active_annotator")
    with op.batch_alter_table("pair_slot", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_slot_pair")
        batch_op.drop_index("ix_pair_slot_claimable")
        batch_op.create_index("ix_pair_slot_claim", ["project_id", "done", "priority"], unique=False)
        batch_op.drop_column("released")
