"""Run Alembic migrations from code (CLI, tests, the embedded default's first start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from app.config import get_settings

_CHECKOUT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The folder that holds alembic.ini and migrations/: the checkout beside the app package, or, for an
    installed wheel (the image's /app), the working directory."""
    return _CHECKOUT if (_CHECKOUT / "alembic.ini").exists() else Path.cwd()


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config for the migrations folder of project_root()."""
    ini = project_root() / "alembic.ini"
    config = Config(str(ini))
    config.set_main_option("script_location", str(ini.parent / "migrations"))
    config.attributes["database_url"] = database_url or get_settings().database_url
    return config


def upgrade(database_url: str | None = None) -> None:
    """Bring the database schema to the newest revision."""
    command.upgrade(alembic_config(database_url), "head")


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    """Undo migrations down to a revision (default: an empty database)."""
    command.downgrade(alembic_config(database_url), revision)
