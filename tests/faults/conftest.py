"""Fault injection: the real app (in this process, so its services can be inspected),
the fake upstream, and MongoDB processes a test may kill and restart.

`fault_app(**env)` starts the gateway on the session's embedded MongoDB with both
providers pointing at the `raw` fake, chat retry back-off 0, stream coalescing off and
rate limits out of the way. `launch(tmp_path, **env)` is the same without fixtures,
for tests that bring their own MongoDB (`DedicatedMongo`).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import uvicorn
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from aipasta.app import create_app
from resolvers.catalog.service import Clock, utc_now
from resolvers.context import Services
from tests.conftest import make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import RedisServer, require_redis
from tests.support.server import RunningApp

MISTRAL = "openrouter:mistralai/mistral-7b-instruct"
MISTRAL_UPSTREAM = "mistralai/mistral-7b-instruct"

# Out of the way of fault scenarios that send many requests from one client.
UNLIMITED = {
    "AIPASTA_RATE_LIMIT": "1000000/minute",
    "AIPASTA_USER_RATE_LIMIT": "1000000/minute",
    "AIPASTA_IP_FLOOD_LIMIT": "1000000/minute",
    "AIPASTA_MAX_STREAMS_PER_USER": 100_000,
}

CHAT = """
mutation Chat($input: ChatInput!) {
  chat(input: $input) {
    model messageId message { content } usage { promptTokens completionTokens totalTokens }
  }
}
"""
SAVE = """
mutation Save($input: SaveMessageInput!) { saveMessage(input: $input) { id sessionId content } }
"""
SESSIONS = "{ chatSessions { nodes { id messageCount lastMessage } } }"
HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) { nodes { id content isUser status model } }
}
"""
HEALTH = "{ health { status services { database } } }"


def user_says(content: str) -> list[dict[str, Any]]:
    return [{"role": "USER", "content": content}]


def chat_input(content: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"input": {"model": MISTRAL, "messages": user_says(content), **extra}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class FaultApp(RunningApp):
    """A running gateway plus the services its lifespan built."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession, services: Services) -> None:
        super().__init__(base_url, http, {"services": services})
        self.services = services
        self._server: uvicorn.Server | None = None
        self._serving: asyncio.Task[None] | None = None

    async def shut_down(self) -> None:
        """Stop the server as a SIGTERM would, with the test's clients still connected."""
        assert self._server is not None and self._serving is not None
        self._server.should_exit = True
        await asyncio.shield(self._serving)

    @property
    def connector(self) -> aiohttp.TCPConnector:
        connector = self.services.http.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        return connector

    def upstream_connections(self) -> tuple[int, int]:
        """(in use, idle in the pool) connections of the app's upstream HTTP client."""
        connector = self.connector
        idle = sum(len(conns) for conns in connector._conns.values())
        return len(connector._acquired), idle

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The one GraphQL error `query` answers (it must fail)."""
        body = await self.graphql(query, variables)
        assert body.get("errors"), body
        (error,) = body["errors"]
        return error  # type: ignore[no-any-return]


@asynccontextmanager
async def launch(tmp_path: Path, clock: Clock = utc_now, **env: Any) -> AsyncIterator[FaultApp]:
    """The app under uvicorn on a loopback port, in this event loop."""
    app = create_app(make_settings(tmp_path, **{**UNLIMITED, **env}), clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # As `aipasta serve`: shutdown waits a bounded time for open connections.
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("server stopped during start-up")
                await asyncio.sleep(0.01)
        services: Services = server.lifespan.state["services"]
        async with aiohttp.ClientSession() as http:
            running = FaultApp(f"http://127.0.0.1:{port}", http, services)
            running._server, running._serving = server, task
            yield running
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def raw(catalog_upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream serving both catalogs; chats answer what the test scripts."""
    return catalog_upstream


FaultAppFactory = Callable[..., Awaitable[FaultApp]]


def provider_env(raw: FakeUpstream) -> dict[str, Any]:
    return {
        "OPENROUTER_BASE_URL": raw.url("openrouter"),
        "HUGGINGFACE_BASE_URL": raw.url("hf"),
        "OPENROUTER_API_KEY": "sk-or-v1-test-secret",
        "HUGGINGFACE_API_KEY": "hf_test_secret",
        "AIPASTA_AUTH": "off",
        "AIPASTA_CHAT_RETRY_BACKOFF": 0,
        "AIPASTA_STREAM_COALESCE_MS": 0,
    }


@pytest_asyncio.fixture
async def fault_app(
    tmp_path: Path, mongo_uri: str, clean_db: str, raw: FakeUpstream
) -> AsyncIterator[FaultAppFactory]:
    async with AsyncExitStack() as stack:

        async def start(clock: Clock = utc_now, **overrides: Any) -> FaultApp:
            env = {"MONGODB_URI": mongo_uri, "AIPASTA_DB_NAME": clean_db, **provider_env(raw)}
            env.update(overrides)
            return await stack.enter_async_context(launch(tmp_path, clock, **env))

        yield start


class DedicatedMongo:
    """A SecantusDB process of the test's own, on a fixed port, with its data on disk
    (synced on commit) so it survives a kill and a restart."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.storage = tmp_path / "db"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    async def start(self, within: float = 30.0, *, test_commands: bool = False) -> None:
        """Start (again); `test_commands` enables `configureFailPoint`."""
        assert self.process is None
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "secantus",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.storage),
                "--sync-on-commit",
                "--log-level",
                "ERROR",
                *(["--enable-test-commands"] if test_commands else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.uri, serverSelectionTimeoutMS=200, connectTimeoutMS=200
        )
        deadline = time.monotonic() + within
        try:
            while True:
                try:
                    await client.admin.command("ping")
                    return
                except PyMongoError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise
                await asyncio.sleep(0.05)  # polling a process that is starting
        finally:
            await client.close()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, as in a crash."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait(timeout=15)

    def stop(self) -> None:
        """At the end of a test: its data is thrown away, so no clean shutdown."""
        self.kill()


@pytest_asyncio.fixture
async def dedicated_mongo(tmp_path: Path) -> AsyncIterator[DedicatedMongo]:
    mongo = DedicatedMongo(tmp_path)
    try:
        yield mongo
    finally:
        mongo.stop()


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    """One redis-server for the session (skipped, saying why, where there is none)."""
    server = RedisServer(require_redis())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_session.flush()
    return redis_session.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and start again."""
    server = RedisServer(require_redis())
    server.start()
    try:
        yield server
    finally:
        server.stop()
