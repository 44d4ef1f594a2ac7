"""The queue's SQL functions: the migrated database holds exactly what app/queue/sql/*.sql says.

A change to a source file without a new migration that freezes and installs it fails here (a deployed
database upgrades through migrations only, so it would never get the change).
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app import migrate
from app.db import sqlfunctions

pytestmark = pytest.mark.integration

PREFIX = "real_queue_"
SOURCES = sqlfunctions.read(sqlfunctions.SOURCES[PREFIX])

_DEFINITIONS = text(
    """
    SELECT p.proname, pg_get_functiondef(p.oid)
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = :schema AND starts_with(p.proname, :prefix)
    """
)


def newest_frozen() -> tuple[str, dict[str, str]]:
    """The frozen copy the newest migration that installs one installed."""
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for revision in script.walk_revisions():
        if (sqlfunctions.FROZEN / revision.revision).is_dir():
            return revision.revision, sqlfunctions.frozen(revision.revision)
    raise AssertionError("no migration freezes the queue's SQL functions")


def definitions(conn: Any, schema: str) -> dict[str, str]:
    rows = conn.execute(_DEFINITIONS, {"schema": schema, "prefix": PREFIX}).all()
    return {name: definition.replace(f"{schema}.", "") for name, definition in rows}


def test_the_newest_migration_installs_the_source_files_as_they_are() -> None:
    revision, frozen = newest_frozen()
    assert frozen == SOURCES, (
        f"app/queue/sql differs from the copy migration {revision} froze: write a new migration that "
        "freezes the files (app.db.sqlfunctions.freeze) and installs them"
    )


def test_the_migrated_database_holds_exactly_the_source_functions(db: Any) -> None:
    with db.engine.connect() as conn:
        migrated = definitions(conn, "public")
        conn.execute(text("CREATE SCHEMA scratch_sql_functions"))
        try:
            # Installed from the files in a schema of their own; tables still resolve in public.
            conn.execute(text("SET LOCAL search_path TO scratch_sql_functions, public"))
            for statement in SOURCES.values():
                conn.execute(text(statement))
            installed = definitions(conn, "scratch_sql_functions")
        finally:
            conn.rollback()
    assert set(migrated) == set(SOURCES)
    for name, definition in installed.items():
        assert migrated[name] == definition, f"{name} in the database differs from app/queue/sql/{name}.sql"
