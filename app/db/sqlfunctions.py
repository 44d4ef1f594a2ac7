"""SQL functions kept as code: one file per function, installed by migrations from frozen copies.

The source of each function is ``app/<domain>/sql/<name>.sql`` (a ``CREATE OR REPLACE FUNCTION``). A
change to it ships as a new migration that freezes the files as they are then
(``migrations/sql/<revision>/``, written by ``freeze``) and installs that copy, so an applied migration is
never edited and a database upgraded step by step gets every version (Alembic's "replaceable objects").
``tests/test_sql_functions.py`` checks that a migrated database holds exactly what the files say.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from app.migrate import project_root

SOURCES = {"real_queue_": Path(__file__).resolve().parent.parent / "queue" / "sql"}
# Beside migrations/versions wherever they are (an installed wheel has no checkout above the package).
FROZEN = project_root() / "migrations" / "sql"


def read(directory: Path) -> dict[str, str]:
    """Function name → its CREATE statement, for every ``*.sql`` file of a directory (by name)."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.sql"))}


def frozen(revision: str) -> dict[str, str]:
    """The function sources a migration froze."""
    directory = FROZEN / revision
    if not directory.is_dir():
        raise FileNotFoundError(f"no frozen SQL for revision {revision} in {directory}")
    return read(directory)


def freeze(revision: str, prefix: str = "real_queue_") -> Path:
    """Copy the current sources of a function family for a new migration (run once, when writing it)."""
    target = FROZEN / revision
    target.mkdir(parents=True, exist_ok=False)
    for path in sorted(SOURCES[prefix].glob("*.sql")):
        shutil.copy2(path, target / path.name)
    return target


def drop_all(prefix: str) -> str:
    """A statement dropping every function of the current schema whose name starts with ``prefix``
    (whatever its arguments: a new version may change them)."""
    return f"""
DO $drop$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = current_schema() AND starts_with(p.proname, '{prefix}')
    LOOP
        EXECUTE 'DROP FUNCTION ' || f::text;
    END LOOP;
END
$drop$"""


def install(op: Any, sources: dict[str, str], prefix: str = "real_queue_") -> None:
    """Replace the function family with these sources (in one migration's transaction)."""
    op.execute(drop_all(prefix))
    for statement in sources.values():
        op.execute(statement)
