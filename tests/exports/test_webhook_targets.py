"""Webhook targets: no credentials in the URL, and the SSRF guard holds for the address actually connected
to (the name is resolved once; a DNS answer that changes between the check and the connection, "DNS
rebinding", cannot point a delivery at an internal service)."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from typing import Any

import pytest

from app.webhooks import service as webhooks
from app.webhooks import tasks as webhook_tasks
from tests.exports.helpers import run_export
from tests.exports.test_webhooks import Receiver, only_delivery, seed

NAME = "hooks.example"


@pytest.fixture(autouse=True)
def _record(recorded_tasks: list[Any], override_settings: Any) -> None:
    override_settings(webhook_allow_private_targets=False)  # the guard is on


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.close()


def resolver(answers: list[str]) -> Any:
    """getaddrinfo that answers NAME with the next address of `answers` on each call (others as usual)."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def fake(host: Any, port: Any = None, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return real(host, port, *args, **kwargs)
        address = answers[min(len(calls), len(answers) - 1)]
        calls.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))]

    fake.calls = calls  # type: ignore[attr-defined]
    return fake


@pytest.mark.parametrize(
    "url", ["https://hookuser:s3cr3t@trainer.example.com/hook", "http://s3cr3t@trainer.example.com/hook"]
)
def test_credentials_in_the_url_are_refused(client: Any, db: Any, url: str) -> None:
    pid = seed(db)
    answer = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": url})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["body.url"]
    assert "s3cr3t" not in answer.text  # never echoed


def test_a_name_that_rebinds_to_loopback_after_the_check_is_not_called(
    client: Any, db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = receiver.server.server_address[1]
    # The check sees a global address; any later lookup of the name gets the receiver on 127.0.0.1.
    fake = resolver(["93.184.216.34", "127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    connected: list[str] = []
    real_connect = socket.create_connection

    def connect(address: Any, *args: Any, **kwargs: Any) -> Any:
        connected.append(address[0])
        try:
            if not ipaddress.ip_address(address[0]).is_loopback:
                raise ConnectionRefusedError("no traffic leaves the test")
        except ValueError:
            pass  # a name: resolved by getaddrinfo, as the old code did
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", connect)
    pid = seed(db)
    answer = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": f"http://{NAME}:{port}/hook"})
    assert answer.status_code == 200, answer.text
    run_export(db, uuid.UUID(pid))
    webhook_tasks.deliver(str(only_delivery(db).id))
    assert receiver.calls == []  # the rebound address was never called
    assert connected == ["93.184.216.34"]  # the checked address was
    assert fake.calls == ["93.184.216.34"]  # the name was resolved once


def test_the_checked_address_is_called_with_the_name_in_the_host_header(
    client: Any, db: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = receiver.server.server_address[1]
    fake = resolver(["127.0.0.1"])
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    # Let the guard take the receiver's loopback address as a public one, for this test only.
    monkeypatch.setattr(webhooks, "_may_call", lambda address: str(address) == "127.0.0.1")
    pid = seed(db)
    answer = client.put(f"/v1/projects/{pid}/export-webhook", json={"url": f"http://{NAME}:{port}/hook"})
    assert answer.status_code == 200, answer.text
    receiver.secret = answer.json()["secret"]
    run_export(db, uuid.UUID(pid))
    assert webhook_tasks.deliver(str(only_delivery(db).id)) == "succeeded"
    [call] = receiver.calls
    assert call["headers"]["Host"] == f"{NAME}:{port}"
    assert call["valid"]
    assert fake.calls == ["127.0.0.1"]
