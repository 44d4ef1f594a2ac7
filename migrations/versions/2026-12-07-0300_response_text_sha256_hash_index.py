"""On Postgres, the index on response.text_sha256 becomes a hash index.

It serves equality lookups only (``text_sha256 = …`` / ``IN (…)``: which responses have these texts). As a
btree over 64 hex characters inserted in random order it was the largest single cost of storing responses:
at a few million rows it no longer fits the buffer cache and every insert touches a random leaf page
(an upload of 1M prompts × 4 answers spent about as much on it as on the rows themselves; docs/benchmarks.md).
A hash index keeps a 4-byte hash per entry, several times smaller. SQLite keeps its btree.

Built CONCURRENTLY under another name, then swapped, so writes go on while a large table is indexed.

Revision ID: f2a3b4c50300
Revises: e1f2a3b40200
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "f2a3b4c50300"
down_revision: str | None = "e1f2a3b40200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _swap(method: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_response_text_sha256_new")  # a failed earlier try
        op.execute(
            f"CREATE INDEX CONCURRENTLY ix_response_text_sha256_new ON response USING {method} (text_sha256)"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_response_text_sha256")
        op.execute("ALTER INDEX ix_response_text_sha256_new RENAME TO ix_response_text_sha256")


def upgrade() -> None:
    _swap("hash")


def downgrade() -> None:
    _swap("btree")
