"""Settings refuse unsafe configurations with a clear message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import Settings


class TestSettings:
    def test_prod_refuses_placeholder_secret(self) -> None:
        with pytest.raises(ValidationError, match="REAL_SECRET_KEY is a placeholder"):
            Settings(env="prod", secret_key="change-me", database_url="postgresql+psycopg://x/y")

    def test_prod_refuses_short_admin_key(self) -> None:
        with pytest.raises(ValidationError, match="REAL_BOOTSTRAP_ADMIN_KEY"):
            Settings(
                env="prod",
                secret_key="s" * 40,
                bootstrap_admin_key="admin",
                database_url="postgresql+psycopg://x/y",
            )

    def test_sqlite_with_a_broker_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="SQLite is a single local file"):
            Settings(database_url="sqlite:///x.db", broker_url="redis://127.0.0.1:6379/0")

    def test_dev_defaults_run_embedded_on_sqlite(self) -> None:
        settings = Settings(_env_file=None, database_url="sqlite:///./real-align.db")
        assert settings.is_sqlite
        assert settings.embedded_tasks

    def test_cli_reports_a_configuration_error(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from app import cli
        from app.config import get_settings

        monkeypatch.setenv("REAL_ENV", "prod")
        monkeypatch.setenv("REAL_SECRET_KEY", "change-me")
        get_settings.cache_clear()
        try:
            assert cli.main(["migrate"]) == 2
        finally:
            get_settings.cache_clear()
        assert "REAL_SECRET_KEY is a placeholder" in capsys.readouterr().err


def test_uuid7_ids_sort_in_creation_order() -> None:
    from app.db.ids import uuid7

    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5000
    assert all(i.version == 7 for i in ids[:10])
