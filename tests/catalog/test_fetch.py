"""Catalog fetches retry transient upstream failures, and only those."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from providers.errors import (
    PoolExhausted,
    ProviderAuthError,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from providers.fetch import RetryPolicy, get_json
from providers.pool import pooled_session
from tests.support.fake_upstream import FakeUpstream, Reply

PATH = "/api/v1/models"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def policy(delays: list[float], **kwargs: float) -> RetryPolicy:
    async def record(delay: float) -> None:
        delays.append(delay)

    return RetryPolicy(sleep=record, **kwargs)  # type: ignore[arg-type]


async def test_two_failures_then_success(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    delays: list[float] = []
    upstream.enqueue(
        PATH,
        Reply(status=503, raw=b"busy"),
        Reply(status=502, raw=b"bad gateway"),
        Reply(body={"data": []}),
    )
    url = upstream.url(PATH)
    result = await get_json(session, url, provider="p", headers={}, policy=policy(delays))
    assert result == {"data": []}
    assert delays == [0.5, 1.0]


async def test_gives_up_after_the_retries(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    delays: list[float] = []
    upstream.enqueue(PATH, *[Reply(status=500, raw=b"")] * 3)
    upstream.enqueue(PATH, Reply(body={"data": []}))  # never reached
    url = upstream.url(PATH)
    with pytest.raises(ProviderUnavailable):
        await get_json(session, url, provider="p", headers={}, policy=policy(delays))
    assert len(delays) == 2


async def test_retry_after_is_honoured_up_to_the_cap(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    delays: list[float] = []
    upstream.enqueue(
        PATH,
        Reply(status=429, raw=b"", headers={"Retry-After": "3"}),
        Reply(status=429, raw=b"", headers={"Retry-After": "120"}),
        Reply(body={"data": [1]}),
    )
    url = upstream.url(PATH)
    result = await get_json(
        session, url, provider="p", headers={}, policy=policy(delays, max_retry_after=10.0)
    )
    assert result == {"data": [1]}
    assert delays == [3.0, 10.0]


async def test_rate_limit_reported_with_retry_after_when_it_persists(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.enqueue(PATH, *[Reply(status=429, raw=b"", headers={"Retry-After": "7"})] * 3)
    url = upstream.url(PATH)
    with pytest.raises(ProviderRateLimited) as info:
        await get_json(session, url, provider="p", headers={}, policy=policy([]))
    assert info.value.retry_after == 7.0


async def test_bad_json_is_retried_then_reported(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    delays: list[float] = []
    upstream.enqueue(PATH, *[Reply(status=200, raw=b"<html>oops</html>")] * 3)
    url = upstream.url(PATH)
    with pytest.raises(ProviderProtocolError):
        await get_json(session, url, provider="p", headers={}, policy=policy(delays))
    assert len(delays) == 2


async def test_a_refused_key_is_not_retried_and_not_echoed(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    delays: list[float] = []
    upstream.enqueue(
        PATH, Reply(status=401, body={"error": {"message": "bad key sk-or-v1-abcdef"}})
    )
    with pytest.raises(ProviderAuthError) as info:
        await get_json(
            session,
            upstream.url(PATH),
            provider="p",
            headers={"Authorization": "Bearer sk-or-v1-abcdef"},
            policy=policy(delays),
        )
    assert delays == []
    assert "sk-or-v1-abcdef" not in str(info.value)


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}{PATH}"
    with pytest.raises(ProviderUnavailable):
        await get_json(session, url, provider="p", headers={}, policy=policy([]))


async def test_a_wait_for_a_free_pooled_connection_is_reported_as_a_full_pool(
    upstream: FakeUpstream,
) -> None:
    release = asyncio.Event()
    upstream.set(PATH, Reply(body={"data": []}, gate=release))
    url = upstream.url(PATH)
    async with pooled_session(pool_size=1, headers={}) as session:
        holding = asyncio.create_task(
            get_json(session, url, provider="p", headers={}, policy=RetryPolicy(retries=0))
        )
        await upstream.wait_for_calls(PATH, 1)

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
