"""Failed authentications are counted against the socket peer, unless it is a configured trusted proxy
(REAL_TRUSTED_PROXIES): only then is X-Forwarded-For believed, and its rightmost untrusted hop is the client.

Run through a real uvicorn with the options `real-align serve` and `real-align api` give it (app/cli.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.cli import proxy_options
from app.config import get_settings
from app.main import create_app
from tests.conftest import ADMIN_KEY
from tests.live_server import serve

WRONG = {"Authorization": "Bearer real_wrong_key_0123456789abcdefghij"}


def statuses(base: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=base) as http:
        return [
            http.get("/v1/me", headers=WRONG | {"X-Forwarded-For": hop}).status_code for hop in forwarded_for
        ]


def test_rotating_x_forwarded_for_from_loopback_is_still_limited(db: Any, override_settings: Any) -> None:
    override_settings(auth_failures_per_minute=3)
    app = create_app(admin_key=ADMIN_KEY, start_runner=False)
    with serve(app, **proxy_options(get_settings())) as base:
        assert statuses(base, [f"203.0.113.{n}" for n in range(6)]) == [401, 401, 401, 429, 429, 429]


def test_behind_a_trusted_proxy_forwarded_clients_are_counted_apart(db: Any, override_settings: Any) -> None:
    override_settings(auth_failures_per_minute=3, trusted_proxies="127.0.0.1, 10.0.0.0/8")
    app = create_app(admin_key=ADMIN_KEY, start_runner=False)
    with serve(app, **proxy_options(get_settings())) as base:
        # Six clients, one failure each: none is limited.
        assert statuses(base, [f"203.0.113.{n}" for n in range(6)]) == [401] * 6
        # One client behind two trusted hops, prepending made-up addresses: the rightmost untrusted hop
        # (203.0.113.99) is the client, whatever comes before it.
        hops = [f"198.51.100.{n}, 203.0.113.99, 10.1.2.3" for n in range(5)]
        assert statuses(base, hops) == [401, 401, 401, 429, 429]


def test_a_bad_entry_fails_at_start(override_settings: Any) -> None:
    override_settings(trusted_proxies="10.0.0.0/8, proxy.internal")
    with pytest.raises(ValueError, match="proxy.internal"):
        get_settings()
