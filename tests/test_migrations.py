"""The migration chain runs up, down and up again on SQLite and on Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

from app import migrate
from app.db import models, sqlfunctions  # noqa: F401
from app.db.base import Base


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def queue_functions(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = conn.scalars(text("SELECT proname FROM pg_proc WHERE proname LIKE 'real_queue%'"))
            return set(names)
    finally:
        engine.dispose()


QUEUE_FUNCTIONS = set(sqlfunctions.read(sqlfunctions.SOURCES["real_queue_"]))


def test_sqlite_up_down_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    assert tables(url) == set(Base.metadata.tables)
    migrate.downgrade(url)
    assert tables(url) == set()
    migrate.upgrade(url)
    assert tables(url) == set(Base.metadata.tables)


def test_postgres_down_up(db: Any) -> None:
    url = db.settings.database_url
    db.engine.dispose()
    assert queue_functions(url) == QUEUE_FUNCTIONS
    migrate.downgrade(url)
    assert tables(url) == set()
    assert queue_functions(url) == set()
    migrate.upgrade(url)
    assert tables(url) == set(Base.metadata.tables)
    assert queue_functions(url) == QUEUE_FUNCTIONS


def test_postgres_schema_matches_the_models(db: Any) -> None:
    """Autogenerate finds nothing to add: every model change has its migration (`alembic check`)."""
    from alembic import command

    command.check(migrate.alembic_config(db.settings.database_url))


def test_postgres_index_methods_match_the_models(db: Any) -> None:
    """Each index the models give a method (``postgresql_using``, e.g. hash) has it in the migrated
    database: `alembic check` compares index columns, not methods."""
    wanted = {
        index.name: index.dialect_options["postgresql"]["using"]
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if index.dialect_options["postgresql"]["using"]
    }
    assert wanted  # e.g. ix_response_text_sha256 (hash)
    with db.engine.connect() as conn:
        found = dict(
            conn.execute(
                text(
                    "SELECT c.relname, am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
                    " WHERE c.relkind = 'i' AND c.relname = ANY(:names)"
                ),
                {"names": list(wanted)},
            ).all()
        )
    assert found == wanted
