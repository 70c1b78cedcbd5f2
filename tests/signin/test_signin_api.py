"""Sign-in over HTTP and websockets against the running app."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.signin.conftest import NEXTAUTH_SECRET, make_jwt, make_nextauth
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

REFRESH = "mutation { refreshModels { stats { total } } }"
WS_PROTOCOL = "graphql-transport-ws"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


@pytest.fixture
def signed_in_app(start_app: StartApp) -> StartApp:
    async def start(**overrides: Any) -> RunningApp:
        env = {
            "AIPASTA_AUTH": "required",
            "NEXTAUTH_SECRET": NEXTAUTH_SECRET,
            "AIPASTA_JWT_SECRET": "jwt-secret-for-tests-0123456789abcdef",
        }
        env.update(overrides)
        return await start_app(**env)

    return start


async def test_admin_key_may_refresh_a_user_key_may_not(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream, database: Database
) -> None:
    keys = ApiKeyStore(database)
    admin = await keys.create(user_id="root", admin=True)
    user = await keys.create(user_id="alice")
    app = await signed_in_app()

    ok = await app.graphql(REFRESH, headers=bearer(admin.key))
    assert ok["data"]["refreshModels"]["stats"]["total"] == 11
    assert code(await app.graphql(REFRESH, headers=bearer(user.key))) == "FORBIDDEN"
    assert code(await app.graphql(REFRESH)) == "UNAUTHENTICATED"
    assert code(await app.graphql(REFRESH, headers=bearer(make_jwt("alice")))) == "FORBIDDEN"


async def test_refused_credential_says_why_but_public_fields_still_answer(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await signed_in_app()
    expired = bearer(make_jwt("alice", ttl=-300))
    body = await app.graphql("{ health { status } modelCatalog { cached } }", headers=expired)
    assert body["data"]["health"]["status"] in {"ok", "degraded"}
    refused = await app.graphql(REFRESH, headers=expired)
    assert code(refused) == "UNAUTHENTICATED"
    assert "expired" in refused["errors"][0]["message"].lower()


async def test_keys_managed_over_graphql_and_revocation_is_immediate_here(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream, database: Database
) -> None:
    admin = await ApiKeyStore(database).create(user_id="root", admin=True)
    app = await signed_in_app()
    created = await app.graphql(
        'mutation { createApiKey(userId: "bob", name: "ci") '
        "{ key apiKey { prefix userId role } } }",
        headers=bearer(admin.key),
    )
    new = created["data"]["createApiKey"]
    assert new["apiKey"] == {"prefix": new["key"][:10], "userId": "bob", "role": "user"}

    listed = await app.graphql("{ apiKeys { prefix userId revoked } }", headers=bearer(admin.key))
    assert {k["userId"] for k in listed["data"]["apiKeys"]} == {"root", "bob"}
    assert all(new["key"] not in json.dumps(k) or k["prefix"] for k in listed["data"]["apiKeys"])
    assert new["key"] not in json.dumps(listed)

    assert (await app.graphql("{ health { status } }", headers=bearer(new["key"])))["data"]
    bob_refresh = await app.graphql(REFRESH, headers=bearer(new["key"]))
    assert code(bob_refresh) == "FORBIDDEN"  # signed in, but not an admin

    revoked = await app.graphql(
        "mutation ($p: String!) { revokeApiKey(prefix: $p) { revoked } }",
        {"p": new["apiKey"]["prefix"]},
        headers=bearer(admin.key),
    )
    assert revoked["data"]["revokeApiKey"]["revoked"] is True
    after = await app.graphql(REFRESH, headers=bearer(new["key"]))
    assert code(after) == "UNAUTHENTICATED"
    assert "revoked" in after["errors"][0]["message"]


async def test_key_admin_fields_need_an_admin(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream, database: Database
) -> None:
    user = await ApiKeyStore(database).create(user_id="alice")
    app = await signed_in_app()
    body = await app.graphql(
        'mutation { createApiKey(userId: "alice", admin: true) { key } }', headers=bearer(user.key)
    )
    assert code(body) == "FORBIDDEN"
    assert code(await app.graphql("{ apiKeys { prefix } }")) == "UNAUTHENTICATED"


async def test_first_start_without_keys_creates_one_admin_key(
    signed_in_app: StartApp,
    catalog_upstream: FakeUpstream,
    database: Database,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On a terminal (without one the key goes to a file: tests/security/test_first_admin_key.py).
    monkeypatch.setattr("aipasta.app.stderr_is_terminal", lambda: True)
    app = await signed_in_app()
    printed = capfd.readouterr().err
    (key,) = [w for w in printed.split() if w.startswith("ap_")][:1]
    assert '"Authorization": "Bearer ' in printed
    assert code(await app.graphql(REFRESH)) == "UNAUTHENTICATED"
    assert "data" in await app.graphql(REFRESH, headers=bearer(key))
    (record,) = await ApiKeyStore(database).list()
    assert record.userId == "admin" and record.role == "admin"
    assert key not in record.model_dump_json()  # only the hash is stored

    await signed_in_app()  # a second start finds a key and creates none
    assert len(await ApiKeyStore(database).list()) == 1


async def test_auth_off_acts_as_local_admin(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_AUTH="off")
    assert "errors" not in await app.graphql(REFRESH)


async def ws_connect(
    app: RunningApp, headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    return await app.http.ws_connect(
        f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,), headers=headers
    )


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    message = await ws.receive(timeout=5)
    assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, message
    return ws.close_code


@pytest.mark.parametrize(
    "payload",
    [
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {make_jwt('x', ttl=-300)}"},
        {"authorization": f"Bearer {make_nextauth('x', secret='wrong-wrong-wrong-wrong-wrong-1')}"},
        {"Authorization": 42},
    ],
)
async def test_websocket_bad_token_in_connection_init_closes_4403(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream, payload: dict[str, Any]
) -> None:
    app = await signed_in_app()
    ws = await ws_connect(app)
    await ws.send_json({"type": "connection_init", "payload": payload})
    assert await closed_with(ws) == 4403


async def test_websocket_bad_header_on_upgrade_closes_4403(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await signed_in_app()
    ws = await ws_connect(app, headers={"Authorization": "Bearer " + make_jwt("x", ttl=-300)})
    await ws.send_json({"type": "connection_init"})
    assert await closed_with(ws) == 4403


@pytest.mark.parametrize("where", ["header", "payload"])
async def test_websocket_good_credentials_are_acknowledged(
    signed_in_app: StartApp, catalog_upstream: FakeUpstream, where: str
) -> None:
    app = await signed_in_app()
    token = make_nextauth("alice")
    ws = await ws_connect(app, headers=bearer(token) if where == "header" else None)
    payload = {"Authorization": f"Bearer {token}"} if where == "payload" else {}
    await ws.send_json({"type": "connection_init", "payload": payload})
    ack = await ws.receive_json(timeout=5)
    assert ack["type"] == "connection_ack"
    await ws.close()
