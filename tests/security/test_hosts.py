"""The `Host` header check: a DNS-rebinding page gets nothing, even with sign-in off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aipasta.settings import SettingsError, load_settings
from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.security.conftest import TYPENAME, get, post
from tests.streaming.conftest import WS_PROTOCOL
from tests.support.errors import body_without_request_id
from tests.support.server import RunningApp, StartApp

CREATE_ADMIN_KEY = 'mutation { createApiKey(userId: "evil", admin: true) { key } }'
INVALID_HOST = {
    "data": None,
    "errors": [
        {
            "message": "Invalid Host header: this server does not answer to that name",
            "extensions": {"code": "BAD_USER_INPUT"},
        }
    ],
}


def port(app: RunningApp) -> int:
    return int(app.base_url.rsplit(":", 1)[1])


async def test_a_rebinding_page_cannot_create_a_key_with_sign_in_off(
    start_app: StartApp, database: Database
) -> None:
    app = await start_app(AIPASTA_AUTH="off")
    for host in ("evil.example", f"evil.example:{port(app)}", "127.0.0.1.evil.example"):
        answer = await post(app, CREATE_ADMIN_KEY, headers={"Host": host})
        assert answer.status == 400
        assert body_without_request_id(answer.body, answer.headers["X-Request-ID"]) == INVALID_HOST
        assert len(answer.headers["X-Request-ID"]) == 32
    # Health says nothing to it either.
    assert (await get(app, "/health", headers={"Host": "evil.example"})).status == 400
    assert await ApiKeyStore(database).count() == 0


async def test_the_loopback_names_are_answered(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_AUTH="off")
    for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST"):
        answer = await post(app, TYPENAME, headers={"Host": f"{host}:{port(app)}"})
        assert (answer.status, answer.body) == (200, {"data": {"__typename": "Query"}})


async def test_a_websocket_from_a_rebinding_page_is_refused(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_AUTH="off")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await app.http.ws_connect(
            f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,), headers={"Host": "evil.example"}
        )
    assert refused.value.status == 400
    ws = await app.http.ws_connect(
        f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,), headers={"Host": "localhost"}
    )
    await ws.send_json({"type": "connection_init"})
    assert (await ws.receive_json()) == {"type": "connection_ack"}
    await ws.close()


async def test_configured_names_and_patterns(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_ALLOWED_HOSTS="chat.example.com, *.internal.example")
    for host, status in {
        "chat.example.com": 200,
        "api.internal.example": 200,
        "internal.example.evil": 400,
        "127.0.0.1": 400,  # configured: the loopback names are no longer implied
    }.items():
        # Twice: the second answer comes from the remembered verdict.
        for _ in range(2):
            assert (await post(app, headers={"Host": host})).status == status, host


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, ["127.0.0.1", "localhost", "[::1]"]),
        ({"AIPASTA_HOST": "::1"}, ["[::1]", "localhost", "127.0.0.1"]),
        ({"AIPASTA_HOST": "10.1.2.3"}, ["10.1.2.3", "localhost", "127.0.0.1", "[::1]"]),
        # Bound to every interface with sign-in required: its public names are unknown.
        ({"AIPASTA_HOST": "0.0.0.0"}, ["*"]),
        (
            {"AIPASTA_HOST": "0.0.0.0", "AIPASTA_ALLOWED_HOSTS": "Chat.Example.com"},
            ["chat.example.com"],
        ),
        ({"AIPASTA_AUTH": "off"}, ["127.0.0.1", "localhost", "[::1]"]),
    ],
)
def test_default_allowed_hosts(
    tmp_path: Path, overrides: dict[str, Any], expected: list[str]
) -> None:
    assert make_settings(tmp_path, **overrides).trusted_hosts == expected


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"AIPASTA_AUTH": "off", "AIPASTA_ALLOWED_HOSTS": "*"}, "AIPASTA_ALLOWED_HOSTS=*"),
        ({"AIPASTA_ALLOWED_HOSTS": "http://chat.example.com"}, "AIPASTA_ALLOWED_HOSTS"),
        ({"AIPASTA_ALLOWED_HOSTS": "chat.*.com"}, "AIPASTA_ALLOWED_HOSTS"),
    ],
)
def test_unsafe_or_malformed_allowed_hosts_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], named: str
) -> None:
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=named):
        load_settings(_env_file=None)
