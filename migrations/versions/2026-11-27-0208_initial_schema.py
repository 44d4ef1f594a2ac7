"""Initial schema: every table of the walking skeleton (portable across SQLite and Postgres).

Revision ID: 4a0f10458e4b
Revises:
Create Date: 2026-11-27 02:08:51.235590
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4a0f10458e4b"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "embedding",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model", sa.String(length=500), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_embedding")),
        sa.UniqueConstraint("model", "text_sha256", name=op.f("uq_embedding_model_text_sha256")),
    )
    op.create_table(
        "project",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("budget", sa.Integer(), nullable=True),
        sa.Column("annotations_per_pair", sa.Integer(), nullable=False),
        sa.Column("pairs_per_prompt", sa.Integer(), nullable=False),
        sa.Column("lease_ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("embedding_model", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("pairs_released", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "annotations_per_pair >= 1", name=op.f("ck_project_annotations_per_pair_positive")
        ),
        sa.CheckConstraint("budget IS NULL OR budget >= 0", name=op.f("ck_project_budget_non_negative")),
        sa.CheckConstraint("pairs_per_prompt >= 1", name=op.f("ck_project_pairs_per_prompt_positive")),
        sa.CheckConstraint("pairs_released >= 0", name=op.f("ck_project_pairs_released_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
    )
    op.create_table(
        "export_run",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_export_run_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_run")),
    )
    op.create_table(
        "job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_job_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_table(
        "prompt",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column("external_id", sa.String(length=512), nullable=False),
        sa.Column("prompt", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["job.id"], name=op.f("fk_prompt_job_id_job"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_prompt_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt")),
        sa.UniqueConstraint("project_id", "external_id", name=op.f("uq_prompt_project_id_external_id")),
    )
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.create_index("ix_prompt_job", ["job_id"], unique=False)
        batch_op.create_index("ix_prompt_project_status", ["project_id", "status"], unique=False)

    op.create_table(
        "response",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=512), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompt.id"], name=op.f("fk_response_prompt_id_prompt"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response")),
        sa.UniqueConstraint("prompt_id", "position", name=op.f("uq_response_prompt_id_position")),
    )
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.create_index("ix_response_text_sha256", ["text_sha256"], unique=False)

    op.create_table(
        "pair",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("response_a_id", sa.Uuid(), nullable=False),
        sa.Column("response_b_id", sa.Uuid(), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labels_count", sa.Integer(), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("response_a_id < response_b_id", name=op.f("ck_pair_ordered_responses")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_pair_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompt.id"], name=op.f("fk_pair_prompt_id_prompt"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["response_a_id"],
            ["response.id"],
            name=op.f("fk_pair_response_a_id_response"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["response_b_id"],
            ["response.id"],
            name=op.f("fk_pair_response_b_id_response"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pair")),
        sa.UniqueConstraint(
            "prompt_id",
            "response_a_id",
            "response_b_id",
            name=op.f("uq_pair_prompt_id_response_a_id_response_b_id"),
        ),
    )
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.create_index("ix_pair_project_status", ["project_id", "status"], unique=False)

    op.create_table(
        "pair_slot",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("pair_id", sa.Uuid(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Float(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("lease_assignment_id", sa.Uuid(), nullable=True),
        sa.Column("lease_owner", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pair.id"], name=op.f("fk_pair_slot_pair_id_pair"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_pair_slot_project_id_project"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pair_slot")),
        sa.UniqueConstraint("pair_id", "slot", name=op.f("uq_pair_slot_pair_id_slot")),
    )
    with op.batch_alter_table("pair_slot", schema=None) as batch_op:
        batch_op.create_index("ix_pair_slot_claim", ["project_id", "done", "priority"], unique=False)

    op.create_table(
        "assignment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("pair_id", sa.Uuid(), nullable=False),
        sa.Column("slot_id", sa.Uuid(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("shown_first_response_id", sa.Uuid(), nullable=False),
        sa.Column("shown_second_response_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pair.id"], name=op.f("fk_assignment_pair_id_pair"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_assignment_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shown_first_response_id"],
            ["response.id"],
            name=op.f("fk_assignment_shown_first_response_id_response"),
        ),
        sa.ForeignKeyConstraint(
            ["shown_second_response_id"],
            ["response.id"],
            name=op.f("fk_assignment_shown_second_response_id_response"),
        ),
        sa.ForeignKeyConstraint(
            ["slot_id"], ["pair_slot.id"], name=op.f("fk_assignment_slot_id_pair_slot"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment")),
    )
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.create_index("ix_assignment_pair_annotator", ["pair_id", "annotator"], unique=False)

    op.create_table(
        "label",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("assignment_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("pair_id", sa.Uuid(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("choice", sa.String(length=16), nullable=False),
        sa.Column("winner_response_id", sa.Uuid(), nullable=True),
        sa.Column("shown_first_response_id", sa.Uuid(), nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignment.id"],
            name=op.f("fk_label_assignment_id_assignment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pair.id"], name=op.f("fk_label_pair_id_pair"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["project.id"], name=op.f("fk_label_project_id_project"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shown_first_response_id"],
            ["response.id"],
            name=op.f("fk_label_shown_first_response_id_response"),
        ),
        sa.ForeignKeyConstraint(
            ["winner_response_id"], ["response.id"], name=op.f("fk_label_winner_response_id_response")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label")),
        sa.UniqueConstraint("assignment_id", name=op.f("uq_label_assignment_id")),
    )
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.create_index("ix_label_pair", ["pair_id"], unique=False)
        batch_op.create_index("ix_label_project", ["project_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_index("ix_label_project")
        batch_op.drop_index("ix_label_pair")

    op.drop_table("label")
    with op.batch_alter_table("assignment", schema=None) as batch_op:
        batch_op.drop_index("ix_assignment_pair_annotator")

    op.drop_table("assignment")
    with op.batch_alter_table("pair_slot", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_slot_claim")

    op.drop_table("pair_slot")
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_index("ix_pair_project_status")

    op.drop_table("pair")
    with op.batch_alter_table("response", schema=None) as batch_op:
        batch_op.drop_index("ix_response_text_sha256")

    op.drop_table("response")
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.drop_index("ix_prompt_project_status")
        batch_op.drop_index("ix_prompt_job")

    op.drop_table("prompt")
    op.drop_table("job")
    op.drop_table("export_run")
    op.drop_table("project")
    op.drop_table("embedding")
