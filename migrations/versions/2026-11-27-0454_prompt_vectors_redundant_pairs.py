"""Prompt text hashes (prompt vectors), redundant pairs: prompt.text_sha256, pair.redundant_with,
project.skip_redundant_pairs.

Existing prompts get their text hash here (the same rendering as app/prompts/text.py, copied so this
revision does not change when the app does); their vectors follow when their project is next embedded.

Revision ID: d4ecc1c24e6c
Revises: 5c291bf23964
Create Date: 2026-11-27 04:54:33.804065
"""

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "d4ecc1c24e6c"
down_revision: str | None = "5c291bf23964"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1_000


def _prompt_text_sha256(prompt: Any) -> str:
    text = (
        prompt
        if isinstance(prompt, str)
        else "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in prompt)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redundant_with", sa.JSON(), nullable=True))

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skip_redundant_pairs", sa.Boolean(), nullable=False, server_default=sa.false())
        )

    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_sha256", sa.String(length=64), nullable=True))

    prompt = sa.table(
        "prompt",
        sa.column("id", sa.Uuid()),
        sa.column("prompt", sa.JSON()),
        sa.column("text_sha256", sa.String(64)),
    )
    bind = op.get_bind()
    after = None
    while True:
        query = sa.select(prompt.c.id, prompt.c.prompt).order_by(prompt.c.id).limit(_BATCH)
        if after is not None:
            query = query.where(prompt.c.id > after)
        rows = bind.execute(query).all()
        if not rows:
            break
        bind.execute(
            prompt.update().where(prompt.c.id == sa.bindparam("pid")).values(text_sha256=sa.bindparam("sha")),
            [{"pid": row.id, "sha": _prompt_text_sha256(row.prompt)} for row in rows],
        )
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.drop_column("text_sha256")

    with op.batch_alter_table("project", schema=None) as batch_op:
        batch_op.drop_column("skip_redundant_pairs")

    with op.batch_alter_table("pair", schema=None) as batch_op:
        batch_op.drop_column("redundant_with")
