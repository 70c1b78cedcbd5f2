"""Two real `aipasta serve` processes on one MongoDB and one Redis, as behind a proxy:
one rate budget, revocation reaching the other process within the key cache time,
history written by one and read by the other, and one catalog fetch for both."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.support.fake_upstream import FakeUpstream
from tests.support.processes import until_healthy
from tests.support.redis_server import free_port
from tests.support.server import RunningApp

AIPASTA = Path(sys.executable).parent / "aipasta"
KEY_CACHE_SECONDS = 1.0
START_TIMEOUT = 30.0
# Even, and above what alice spends (two operations and the polls of one key cache time).
USER_BUDGET = 30

CATALOG = "{ modelCatalog { stats { total } providers { provider status } } }"
SAVE = """
mutation Save($input: SaveMessageInput!) { saveMessage(input: $input) { id content } }
"""
HISTORY = """
query History($sessionId: ID!) { chatHistory(sessionId: $sessionId) { nodes { id content } } }
"""
REVOKE = "mutation Revoke($prefix: String!) { revokeApiKey(prefix: $prefix) { prefix } }"
WHO = "{ chatSessions { nodes { id } } }"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


@asynccontextmanager
async def aipasta_serve(
    tmp_path: Path, name: str, env: dict[str, str]
) -> AsyncIterator[RunningApp]:
    """`aipasta serve` as a process of its own (PYTHONPATH is passed on: this tree's code)."""
    port = free_port()
    log_path = tmp_path / f"{name}.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AIPASTA_")}
    environment.update(env)
    environment["AIPASTA_DATA_DIR"] = str(tmp_path / f"{name}-data")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(AIPASTA), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await until_healthy(http, base_url, server, log_path, within=START_TIMEOUT)
            yield RunningApp(base_url, http)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(server.wait, 30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


async def until(probe: Callable[[], Any], within: float) -> float:
    """Seconds until the awaitable `probe()` returns true (polling; fails past `within`)."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < within, f"not within {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_two_processes_share_one_database_and_one_redis(
    tmp_path: Path,
    mongo_uri: str,
    clean_db: str,
    database: Database,
    catalog_upstream: FakeUpstream,
    redis_url: str,
) -> None:
    keys = ApiKeyStore(database)
    admin = (await keys.create(user_id="admin", admin=True)).key
    alice = await keys.create(user_id="alice")
    carol = (await keys.create(user_id="carol")).key
    env = {
        "MONGODB_URI": mongo_uri,
        "AIPASTA_DB_NAME": clean_db,
        "OPENROUTER_BASE_URL": catalog_upstream.url("openrouter"),
        "HUGGINGFACE_BASE_URL": catalog_upstream.url("hf"),
        "OPENROUTER_API_KEY": "sk-or-v1-test-secret",
        "HUGGINGFACE_API_KEY": "hf_test_secret",
        "AIPASTA_LOG_LEVEL": "WARNING",
        "AIPASTA_RATE_LIMIT_STORAGE": redis_url,
        "AIPASTA_RATE_LIMIT": "1000/minute",
        "AIPASTA_USER_RATE_LIMIT": f"{USER_BUDGET}/minute",
        "AIPASTA_KEY_CACHE_SECONDS": str(KEY_CACHE_SECONDS),
    }
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(aipasta_serve(tmp_path, "first", env))

        # The catalog: fetched once, by the first process...
        fetched = await first.graphql(CATALOG)
        assert "errors" not in fetched, fetched
        assert catalog_upstream.calls["/openrouter/models"] == 1
        assert catalog_upstream.calls["/hf/models"] == 1

        # ...and read from the database by the second, started after it.
        second = await stack.enter_async_context(aipasta_serve(tmp_path, "second", env))
        _, health = await second.get("/health")
        assert health["services"]["rateLimitStore"] == "connected"
        read = await second.graphql(CATALOG)
        assert read["data"] == fetched["data"]
        assert catalog_upstream.calls["/openrouter/models"] == 1
        assert catalog_upstream.calls["/hf/models"] == 1

        # History saved through one process is read through the other.
        message = {"sessionId": "scaleout-1", "content": "saved on first", "isUser": True}
        saved = await first.graphql(SAVE, {"input": message}, headers=bearer(alice.key))
        assert "errors" not in saved, saved
        history = await second.graphql(
            HISTORY, {"sessionId": "scaleout-1"}, headers=bearer(alice.key)
        )
        assert history["data"]["chatHistory"]["nodes"] == [saved["data"]["saveMessage"]]

        # A key revoked through one process is refused by the other (which had it
        # cached) within the key cache time.
        revoked = await first.graphql(
            REVOKE, {"prefix": alice.record.prefix}, headers=bearer(admin)
        )
        assert "errors" not in revoked, revoked
        assert codes(await first.graphql(WHO, headers=bearer(alice.key))) == ["UNAUTHENTICATED"]

        async def refused_by_second() -> bool:
            body = await second.graphql(WHO, headers=bearer(alice.key))
            return codes(body) == ["UNAUTHENTICATED"]

        assert await until(refused_by_second, within=KEY_CACHE_SECONDS + 2) <= (
            KEY_CACHE_SECONDS + 2
        )

        # One rate budget: carol's operations a minute, wherever they land.
        apps = (first, second) * (USER_BUDGET // 2)
        answers = [await app.graphql(WHO, headers=bearer(carol)) for app in apps]
        assert [codes(body) for body in answers] == [[]] * USER_BUDGET
        for app in (first, second):
            body = await app.graphql(WHO, headers=bearer(carol))
            assert codes(body) == ["RATE_LIMITED"]
            assert body["errors"][0]["extensions"]["limit"] == USER_BUDGET
