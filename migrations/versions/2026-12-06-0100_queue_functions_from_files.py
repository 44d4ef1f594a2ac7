"""The queue's SQL functions from their source files; labels keep the screen choice only.

The claim and label functions move to `app/queue/sql/*.sql` (one file per function); this migration installs
the copy frozen in `migrations/sql/b1d2e3f40100/` (app/db/sqlfunctions.py), as will every later change, so a
deployed database gets each version in turn. It also carries the change made to `real_queue_claim` after
migration 0800 had been applied (one lease statement, `released >= NOT budget_open`), which a database
upgraded before that edit never received.

`label.winner_response_id` is dropped: a label stores the screen choice and the response shown first, and
app/labels/outcome.py alone turns that into the pair's side (the mapping lived in Python and in PL/pgSQL).
`real_queue_label` returns the response shown second instead, from which the API answers the winner.

Revision ID: b1d2e3f40100
Revises: f7a0c1e2d800
Create Date: 2026-12-06 01:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from app.db import sqlfunctions

revision: str = "b1d2e3f40100"
down_revision: str | None = "f7a0c1e2d800"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        op.execute(sqlfunctions.drop_all("real_queue_"))
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_label_winner_response_id_response"), type_="foreignkey")
        batch_op.drop_column("winner_response_id")
    if _postgres():
        sqlfunctions.install(op, sqlfunctions.frozen(revision))


def downgrade() -> None:
    if _postgres():
        op.execute(sqlfunctions.drop_all("real_queue_"))
    with op.batch_alter_table("label", schema=None) as batch_op:
        batch_op.add_column(sa.Column("winner_response_id", sa.Uuid(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_label_winner_response_id_response"), "response", ["winner_response_id"], ["id"]
        )
    op.execute(
        "UPDATE label SET winner_response_id = CASE choice "
        "WHEN 'a' THEN shown_first_response_id "
        "WHEN 'b' THEN (SELECT a.shown_second_response_id FROM assignment a "
        "WHERE a.id = label.assignment_id) "
        "END"
    )
    if _postgres():
        previous = _load_module(Path(__file__).with_name("2026-11-27-0800_queue_hot_path.py"))
        for statement in (previous.ASSIGN, previous.CLAIM, previous.LABEL_RESULT, previous.LABEL,
                          previous.CALLER, previous.CLAIM_AS, previous.LABEL_AS):  # fmt: skip
            op.execute(statement)


def _load_module(path: Path) -> object:
    spec = importlib.util.spec_from_file_location("queue_hot_path_0800", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
