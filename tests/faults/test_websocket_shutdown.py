"""At shutdown the server closes every open websocket at once (1012, service restart: a
graphql-ws client reconnects) and the connection's handler ends with it, even with the
database down and an API key re-check under way: shutdown never waits out its
graceful timeout on a websocket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from documents.errors import DatabaseUnavailable
from resolvers.identity.identity import Identity
from tests.faults.conftest import DedicatedMongo, FaultApp, FaultAppFactory, launch
from tests.signin.conftest import JWT_SECRET
from tests.streaming.conftest import WS_PROTOCOL, GraphQLWebSocket

SERVICE_RESTART = 1012
TYPENAME = "{ __typename }"
GRACEFUL_TIMEOUT_EXCEEDED = "timeout graceful shutdown exceeded"


def keys_rechecked(**overrides: Any) -> dict[str, Any]:
    """API keys required and looked up again at every tick of a socket's watch."""
    return {
        "AIPASTA_AUTH": "required",
        "AIPASTA_JWT_SECRET": JWT_SECRET,
        "AIPASTA_KEY_CACHE_SECONDS": 0,
        **overrides,
    }


class UvicornErrors:
    """uvicorn's own error log, which does not reach the root logger: heard from `listen()`
    on (after the server started: its logging set-up drops the handlers it finds)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog
        self._logger = logging.getLogger("uvicorn.error")

    def listen(self) -> None:
        self._logger.addHandler(self._caplog.handler)

    @property
    def text(self) -> str:
        return self._caplog.text

    def close(self) -> None:
        self._logger.removeHandler(self._caplog.handler)


@pytest.fixture
def uvicorn_errors(caplog: pytest.LogCaptureFixture) -> Iterator[UvicornErrors]:
    errors = UvicornErrors(caplog)
    yield errors
    errors.close()


async def open_signed_in(app: FaultApp) -> GraphQLWebSocket:
    created = await app.services.keys.create(user_id="alice")
    ws = await app.http.ws_connect(f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,))
    await ws.send_json(
        {"type": "connection_init", "payload": {"Authorization": f"Bearer {created.key}"}}
    )
    assert (await ws.receive_json(timeout=5)) == {"type": "connection_ack"}
    client = GraphQLWebSocket(ws)
    assert (await client.run(TYPENAME, {})).completed
    return client


async def shut_down_with(app: FaultApp, client: GraphQLWebSocket) -> int | None:
    """Shut the server down with `client` connected; the close code it was sent."""
    shutdown = asyncio.create_task(app.shut_down())
    message = await client.ws.receive(timeout=5)
    assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, message
    await shutdown
    return client.ws.close_code


def watches() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "ws-credential-watch"]


async def test_shutdown_closes_a_socket_whose_key_recheck_never_answers(
    fault_app: FaultAppFactory, uvicorn_errors: UvicornErrors
) -> None:
    """A re-check stuck on a database that never answers, which loses the cancellation
    the socket's shutdown sends it (pymongo's server selection on Python 3.11): the
    handler ended only when uvicorn gave up on it, after its graceful timeout."""
    app = await fault_app(**keys_rechecked())
    uvicorn_errors.listen()
    client = await open_signed_in(app)
    authenticator = app.services.authenticator
    rechecking = asyncio.Event()
    lost = False

    async def never_answers(authorization: str | None) -> Identity | None:
        nonlocal lost
        rechecking.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if lost:
                raise
            lost = True
        raise DatabaseUnavailable()

    authenticator.authenticate = never_answers  # type: ignore[method-assign]
    await asyncio.wait_for(rechecking.wait(), 5)

    assert await shut_down_with(app, client) == SERVICE_RESTART
    assert GRACEFUL_TIMEOUT_EXCEEDED not in uvicorn_errors.text
    assert watches() == []


async def test_shutdown_with_the_database_down_closes_open_sockets_at_once(
    tmp_path: Path, uvicorn_errors: UvicornErrors
) -> None:
    mongo = DedicatedMongo(tmp_path)
    await mongo.start()
    try:
        env = keys_rechecked(
            MONGODB_URI=mongo.uri,
            AIPASTA_DB_NAME="shutdown",
            AIPASTA_DB_TIMEOUT_MS=300,
            AIPASTA_DB_OPERATION_TIMEOUT_MS=1000,
        )
        async with launch(tmp_path, **env) as app:
            uvicorn_errors.listen()
            # A first ping may miss 300 ms on a loaded machine; the app then connects soon.
            assert app.services.database is not None
            assert await app.services.database.wait_connected(within=30)
            clients = [await open_signed_in(app) for _ in range(3)]
            mongo.kill()
            # The watches now fail their re-checks; each socket stays open meanwhile.
            for client in clients:
                await client.ws.send_json({"type": "ping"})
                assert await client.ws.receive_json(timeout=5) == {"type": "pong"}

            shutdown = asyncio.create_task(app.shut_down())
            for client in clients:
                message = await client.ws.receive(timeout=5)
                assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}
                assert client.ws.close_code == SERVICE_RESTART
            await shutdown
        assert GRACEFUL_TIMEOUT_EXCEEDED not in uvicorn_errors.text
        assert watches() == []
    finally:
        mongo.stop()
