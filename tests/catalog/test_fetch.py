"""Catalog fetches retry transient upstream failures, and only those."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses

from providers.errors import (
    PoolExhausted,
    ProviderAuthError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from providers.fetch import RetryPolicy, get_json
from providers.pool import pooled_session

URL = "http://upstream.test/api/v1/models"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def policy(delays: list[float], **kwargs: float) -> RetryPolicy:
    async def record(delay: float) -> None:
        delays.append(delay)

    return RetryPolicy(sleep=record, **kwargs)  # type: ignore[arg-type]


async def test_two_failures_then_success(session: aiohttp.ClientSession) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        mock.get(URL, status=503, body="busy")
        mock.get(URL, status=502, body="bad gateway")
        mock.get(URL, payload={"data": []})
        result = await get_json(session, URL, provider="p", headers={}, policy=policy(delays))
    assert result == {"data": []}
    assert delays == [0.5, 1.0]


async def test_gives_up_after_the_retries(session: aiohttp.ClientSession) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, status=500)
        mock.get(URL, payload={"data": []})  # never reached
        with pytest.raises(ProviderUnavailable):
            await get_json(session, URL, provider="p", headers={}, policy=policy(delays))
    assert len(delays) == 2


async def test_retry_after_is_honoured_up_to_the_cap(session: aiohttp.ClientSession) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        mock.get(URL, status=429, headers={"Retry-After": "3"})
        mock.get(URL, status=429, headers={"Retry-After": "120"})
        mock.get(URL, payload={"data": [1]})
        result = await get_json(
            session, URL, provider="p", headers={}, policy=policy(delays, max_retry_after=10.0)
        )
    assert result == {"data": [1]}
    assert delays == [3.0, 10.0]


async def test_rate_limit_reported_with_retry_after_when_it_persists(
    session: aiohttp.ClientSession,
) -> None:
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, status=429, headers={"Retry-After": "7"})
        with pytest.raises(ProviderRateLimited) as info:
            await get_json(session, URL, provider="p", headers={}, policy=policy([]))
    assert info.value.retry_after == 7.0


async def test_bad_json_is_retried_then_reported(session: aiohttp.ClientSession) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, status=200, body="<html>oops</html>")
        with pytest.raises(ProviderProtocolError):
            await get_json(session, URL, provider="p", headers={}, policy=policy(delays))
    assert len(delays) == 2


async def test_a_refused_key_is_not_retried_and_not_echoed(
    session: aiohttp.ClientSession,
) -> None:
    delays: list[float] = []
    with aioresponses() as mock:
        mock.get(URL, status=401, payload={"error": {"message": "bad key sk-or-v1-abcdef"}})
        with pytest.raises(ProviderAuthError) as info:
            await get_json(
                session,
                URL,
                provider="p",
                headers={"Authorization": "Bearer sk-or-v1-abcdef"},
                policy=policy(delays),
            )
    assert delays == []
    assert "sk-or-v1-abcdef" not in str(info.value)


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    with aioresponses() as mock:
        for _ in range(3):
            mock.get(URL, exception=aiohttp.ClientConnectionError("refused"))
        with pytest.raises(ProviderUnavailable):
            await get_json(session, URL, provider="p", headers={}, policy=policy([]))


async def test_a_wait_for_a_free_pooled_connection_is_reported_as_a_full_pool() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def models(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    url = str(server.make_url("/v1/models"))
    try:
        async with pooled_session(pool_size=1, headers={}) as session:
            holding = asyncio.create_task(
                get_json(session, url, provider="p", headers={}, policy=RetryPolicy(retries=0))
            )
            await arrived.wait()

            with pytest.raises(PoolExhausted, match="the gateway's connection pool is full"):
                await get_json(
                    session,
                    url,
                    provider="p",
                    headers={},
                    policy=RetryPolicy(retries=0, timeout=0.2),
                )
            release.set()
            assert await holding == {"data": []}
    finally:
        await server.close()
