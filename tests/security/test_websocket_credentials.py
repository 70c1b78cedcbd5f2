"""Credentials are checked again for as long as a websocket lives: a revoked API key or
an expired token closes the socket with 4403, and the streams open on it end as on a
client disconnect (upstream closed, partial answer saved, usage recorded)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from aipasta.edge.ws_credentials import CredentialWatch
from documents.database import Database
from resolvers.errors import CredentialError, RevokedCredential
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.faults.conftest import DedicatedMongo, launch
from tests.signin.conftest import JWT_SECRET, NEXTAUTH_SECRET, make_jwt, make_nextauth
from tests.streaming.conftest import (
    CHAT,
    WS_PROTOCOL,
    GraphQLWebSocket,
    StreamApp,
)
from tests.streaming.test_chat_stream import (
    _assert_partial_kept,
    _stream_until_partial,
    chat_input,
)
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp

KEY_CACHE_SECONDS = 0.2
# The bound the issue sets: a revocation closes the socket within the cache time + 1 s.
REVOCATION_BOUND = KEY_CACHE_SECONDS + 1.0
LEEWAY = 30
TYPENAME = "{ __typename }"


def signed_in(**overrides: Any) -> dict[str, Any]:
    return {
        "AIPASTA_AUTH": "required",
        "AIPASTA_JWT_SECRET": JWT_SECRET,
        "NEXTAUTH_SECRET": NEXTAUTH_SECRET,
        "AIPASTA_KEY_CACHE_SECONDS": KEY_CACHE_SECONDS,
        **overrides,
    }


async def open_signed_in(app: RunningApp, token: str) -> GraphQLWebSocket:
    ws = await app.http.ws_connect(f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,))
    await ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    assert (await ws.receive_json(timeout=5)) == {"type": "connection_ack"}
    return GraphQLWebSocket(ws)


async def closed_with(client: GraphQLWebSocket, within: float) -> tuple[int | None, str]:
    """Read until the server closes the socket; its close code and reason."""
    while True:
        message = await client.ws.receive(timeout=within)
        if message.type == aiohttp.WSMsgType.TEXT:
            client._pending.append(message.json())
            continue
        assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, message
        return client.ws.close_code, str(message.extra or "")


async def test_revoking_a_key_closes_its_socket_and_ends_its_stream_as_a_disconnect(
    sse: FakeUpstream, stream_app: StreamApp, database: Database, store: Any
) -> None:
    keys = ApiKeyStore(database)
    created = await keys.create(user_id="alice")
    app = await stream_app(**signed_in())
    client = await open_signed_in(app, created.key)
    await _stream_until_partial(sse, client, "s-revoked")

    await keys.revoke(created.key)
    revoked_at = time.monotonic()
    code, reason = await closed_with(client, within=REVOCATION_BOUND + 1)

    assert code == 4403
    assert "revoked" in reason
    assert time.monotonic() - revoked_at < REVOCATION_BOUND
    # As on a disconnect: the upstream request is abandoned, the partial answer saved
    # (readable with another credential of the same user) and its usage recorded.
    await sse.chats[0].wait_closed(within=1.0)
    reader = await keys.create(user_id="alice")
    app.http.headers["Authorization"] = f"Bearer {reader.key}"
    await _assert_partial_kept(app, store, "s-revoked")
    # No terminal event was sent for the stream: it ended with the socket.
    assert all(m["type"] == "next" for m in client.unread("1"))


async def test_a_subscribe_after_revocation_does_not_run(
    sse: FakeUpstream, stream_app: StreamApp, database: Database, store: Any
) -> None:
    keys = ApiKeyStore(database)
    created = await keys.create(user_id="alice")
    app = await stream_app(**signed_in(AIPASTA_KEY_CACHE_SECONDS=0))
    client = await open_signed_in(app, created.key)
    assert (await client.run(TYPENAME, {})).completed

    await keys.revoke(created.key)
    await client.subscribe(CHAT, chat_input(sessionId="s-after"))
    code, _ = await closed_with(client, within=REVOCATION_BOUND)

    assert code == 4403
    assert client.unread("2") == []
    assert sse.chats == []
    assert await store["chat_messages"].count_documents({}) == 0


@pytest.mark.parametrize("kind", ["jwt", "nextauth"])
async def test_a_token_socket_closes_once_exp_plus_the_leeway_has_passed(
    kind: str, stream_app: StreamApp
) -> None:
    # Whole-second `exp`, 30 s leeway: this token stops working 1 to 2 s from now, which
    # leaves a loaded machine time to open the socket and run one operation first.
    app = await stream_app(**signed_in())
    make = make_jwt if kind == "jwt" else make_nextauth
    token = make("alice", ttl=2 - LEEWAY)
    refused_from = int(time.time() + 2 - LEEWAY) + LEEWAY
    client = await open_signed_in(app, token)
    assert (await client.run(TYPENAME, {})).completed

    code, reason = await closed_with(client, within=4.0)

    assert code == 4403
    assert "expired" in reason
    assert time.time() >= refused_from
    assert time.time() < refused_from + 1.0


async def test_each_connection_sleeps_until_its_credential_can_change_then_checks_once(
    tmp_path: Path, database: Database
) -> None:
    """One timer per connection, set for the next moment the answer could differ (the
    end of the key's cache entry, the token's exp plus leeway); never a polling loop."""
    monotonic = [1000.0]
    wall = time.time()
    settings = make_settings(
        tmp_path,
        AIPASTA_AUTH="required",
        AIPASTA_JWT_SECRET=JWT_SECRET,
        AIPASTA_KEY_CACHE_SECONDS=5,
    )
    keys = ApiKeyStore(database)
    authenticator = Authenticator(
        settings, keys, monotonic=lambda: monotonic[0], wall_clock=lambda: wall
    )
    created = await keys.create(user_id="alice")
    delays: list[float] = []
    refused = asyncio.Event()
    errors: list[CredentialError] = []

    async def sleep(seconds: float) -> None:
        # Simulated time: each sleep moves the clock; the second one spans a revocation.
        delays.append(seconds)
        monotonic[0] += seconds
        if len(delays) == 2:
            await keys.revoke(created.key)

    async def refuse(error: CredentialError) -> None:
        errors.append(error)
        refused.set()

    # Verified at t=1000 (cached until 1005) and watched from t=1002.
    authorization = f"Bearer {created.key}"
    identity = await authenticator.authenticate(authorization)
    assert identity is not None
    monotonic[0] = 1002.0
    watch = CredentialWatch(authenticator, authorization, identity, refuse=refuse, sleep=sleep)
    watch.start()
    await asyncio.wait_for(refused.wait(), 5)
    await watch.stop()

    # Up to the cache entry's end, then one lookup per cache window; the lookup after
    # the revocation refuses the connection.
    assert delays == [3.0, 5.0]
    assert [type(e) for e in errors] == [RevokedCredential]

    # A JWT: one sleep, until exp + 30 s.
    token = make_jwt("alice", ttl=600)
    jwt_identity = await authenticator.authenticate(f"Bearer {token}")
    assert jwt_identity is not None
    woke = asyncio.Event()

    async def park(seconds: float) -> None:
        delays.append(seconds)
        woke.set()
        await asyncio.Event().wait()

    jwt_watch = CredentialWatch(
        authenticator, f"Bearer {token}", jwt_identity, refuse=refuse, sleep=park
    )
    delays.clear()
    jwt_watch.start()
    await asyncio.wait_for(woke.wait(), 5)
    await jwt_watch.stop()
    assert delays == [pytest.approx(int(wall + 600) + LEEWAY - wall, abs=1)]


async def test_a_key_that_cannot_be_checked_refuses_the_operation_not_the_socket(
    tmp_path: Path,
) -> None:
    """The database down: a `subscribe` cannot know whether the key was revoked, so it
    does not run (DATABASE_UNAVAILABLE for that id); the socket stays open."""
    mongo = DedicatedMongo(tmp_path)
    await mongo.start()
    try:
        env = signed_in(
            MONGODB_URI=mongo.uri,
            AIPASTA_DB_NAME="creds",
            AIPASTA_KEY_CACHE_SECONDS=0,
            AIPASTA_DB_TIMEOUT_MS=300,
            AIPASTA_DB_OPERATION_TIMEOUT_MS=1000,
        )
        async with launch(tmp_path, **env) as app:
            # 300 ms is short for a first ping on a loaded machine: the app then connects
            # in the background (the database is up; the test is about it going down).
            assert app.services.database is not None
            assert await app.services.database.wait_connected(within=30)
            created = await app.services.keys.create(user_id="alice")
            client = await open_signed_in(app, created.key)
            assert (await client.run(TYPENAME, {})).completed

            mongo.kill()
            outcome = await client.run(TYPENAME, {})

            assert outcome.rejected and outcome.events == []
            assert [e["extensions"]["code"] for e in outcome.errors] == ["DATABASE_UNAVAILABLE"]
            await client.ws.send_json({"type": "ping"})
            assert await client.ws.receive_json(timeout=5) == {"type": "pong"}
    finally:
        mongo.stop()
