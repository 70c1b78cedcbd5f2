"""The OpenAI-compatible streaming client, against aioresponses and real loopback servers.

aioresponses covers answers whose bytes can be given up front; a real server on
127.0.0.1 covers delivery: split chunks, stalls, resets and disconnects.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aioresponses import aioresponses
from pydantic import SecretStr

from providers.chat import ChatDelta, ChatRequest, TokenUsage
from providers.errors import (
    FailureKind,
    PoolExhausted,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderProtocolError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.pool import pooled_session

StartUpstream = Callable[
    [Callable[[web.Request], Awaitable[web.StreamResponse]]], Awaitable[str]
]  # the `start_upstream` fixture of conftest.py
KEY = "sk-or-v1-test0123456789abcdef0123456789"
URL = "https://upstream.test/api/v1"
COMPLETIONS = f"{URL}/chat/completions"
SSE = {"Content-Type": "text/event-stream"}
RELAXED = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=10.0)
REQUEST = ChatRequest(model="openai/gpt-4o", messages=[{"role": "user", "content": "Hi"}])
DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "cost": 0.0001234}


def chunk(
    content: str | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    no_choices: bool = False,
    newline: str = "\n",
) -> bytes:
    body: dict[str, Any] = {
        "id": "gen-42",
        "provider": "OpenAI",
        "model": "openai/gpt-4o-2024-08-06",
        "object": "chat.completion.chunk",
        "choices": []
        if no_choices
        else [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
    }
    if usage is not None:
        body["usage"] = usage
    text = json.dumps(body, ensure_ascii=False)
    return f"data: {text}{newline}{newline}".encode()


def make_client(
    session: aiohttp.ClientSession,
    base_url: str = URL,
    *,
    api_key: str | None = KEY,
    timeouts: ChatTimeouts = RELAXED,
    extra_headers: dict[str, str] | None = None,
) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        session,
        name="openrouter",
        base_url=base_url,
        api_key=SecretStr(api_key) if api_key is not None else None,
        extra_headers=extra_headers,
        timeouts=timeouts,
    )


async def collect(stream: AsyncIterator[ChatDelta]) -> list[ChatDelta]:
    return [delta async for delta in stream]


async def close(stream: AsyncIterator[ChatDelta]) -> None:
    """Close a stream early: the client's stream is an async generator."""
    assert isinstance(stream, AsyncGenerator)
    await stream.aclose()


async def collect_into(received: list[str], stream: AsyncIterator[ChatDelta]) -> None:
    """Like collect(), but what arrived before a failure stays visible to the test."""
    async for delta in stream:
        received.append(delta.content)


async def sse_response(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE)
    await response.prepare(request)
    return response


class Watch:
    """Server-side view of one connection: blocks a handler and notices the client
    going away (TestServer cancels the handler when its connection is lost)."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()

    async def block(self, until: asyncio.Event | None = None) -> None:
        try:
            await (until or asyncio.Event()).wait()
        except asyncio.CancelledError:
            self.disconnected.set()
            raise

    async def wait_disconnected(self) -> None:
        async with asyncio.timeout(5):
            await self.disconnected.wait()


# --- a complete answer over the network ------------------------------------------


async def test_streams_an_openrouter_answer_delivered_in_odd_pieces(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    wire = b"".join(
        [
            KEEPALIVE,
            chunk("", newline="\r\n"),
            chunk("Café ", newline="\r\n"),
            KEEPALIVE,
            chunk("au lait 🥐", newline="\r\n"),
            chunk("", finish="stop", newline="\r\n"),
            chunk(no_choices=True, usage=USAGE, newline="\r\n"),
            b"data: [DONE]\r\n\r\n",
        ]
    )
    seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((await request.json(), dict(request.headers)))
        response = await sse_response(request)
        for start in range(0, len(wire), 7):  # cuts through CRLFs and multi-byte chars
            await response.write(wire[start : start + 7])
        await response.write_eof()
        return response

    base_url = await start_upstream(handler)
    client = make_client(
        session, base_url, extra_headers={"HTTP-Referer": "https://pasta.test", "X-Title": "AI"}
    )
    request = ChatRequest(
        model="openai/gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
                ],
            }
        ],
        temperature=0.2,
        max_tokens=64,
        stop=["\n\n"],
    )

    deltas = await collect(client.stream_chat(request))

    assert "".join(delta.content for delta in deltas) == "Café au lait 🥐"
    assert [delta.finish_reason for delta in deltas] == [None, None, "stop", None]
    assert deltas[-1].usage == TokenUsage(
        prompt_tokens=12, completion_tokens=5, total_tokens=17, cost=Decimal("0.0001234")
    )
    assert {delta.upstream_model for delta in deltas} == {"openai/gpt-4o-2024-08-06"}
    assert {delta.response_id for delta in deltas} == {"gen-42"}

    body, headers = seen[0]
    assert body == {
        "model": "openai/gpt-4o",
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.2,
        "max_tokens": 64,
        "stop": ["\n\n"],
    }
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["HTTP-Referer"] == "https://pasta.test"
    assert headers["X-Title"] == "AI"


async def test_connection_goes_back_to_the_pool_after_a_complete_stream(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    peers: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peers.append(request.transport.get_extra_info("peername"))
        response = await sse_response(request)
        await response.write(chunk("ok", finish="stop") + DONE)
        # The end of the chunked body arrives separately, after [DONE]: the client has
        # to wait for it, or the half-finished connection cannot be reused.
        await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    client = make_client(session, await start_upstream(handler))

    for _ in range(3):
        assert [d.content for d in await collect(client.stream_chat(REQUEST))] == ["ok"]

    assert len(peers) == 3
    assert len(set(peers)) == 1, "each request opened a new connection"


async def test_no_authorization_header_without_a_key(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    headers: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        headers.append(dict(request.headers))
        response = await sse_response(request)
        await response.write(chunk("ok", finish="stop") + DONE)
        return response

    client = make_client(session, await start_upstream(handler), api_key=None)
    await collect(client.stream_chat(REQUEST))

    assert "Authorization" not in headers[0]
    assert "ok" not in repr(client)
    assert KEY not in repr(make_client(session))


# --- timeouts -----------------------------------------------------------------------


async def test_keepalive_comments_do_not_count_as_the_first_token(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(KEEPALIVE * 20)
        await watch.block()
        return response

    timeouts = ChatTimeouts(connect=2.0, first_token=0.2, idle=5.0, total=10.0)
    client = make_client(session, await start_upstream(handler), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match=r"did not start answering within 0\.2s"):
        await collect(client.stream_chat(REQUEST))
    await watch.wait_disconnected()


async def test_keepalive_comments_keep_a_pausing_stream_alive(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("thinking…"))
        # A 0.4 s pause in the answer, longer than the idle timeout, filled with
        # keep-alives as OpenRouter does while a reasoning model works.
        for _ in range(10):
            await asyncio.sleep(0.04)
            await response.write(KEEPALIVE)
        await response.write(chunk(" done", finish="stop") + DONE)
        return response

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=0.25, total=10.0)
    client = make_client(session, await start_upstream(handler), timeouts=timeouts)

    deltas = await collect(client.stream_chat(REQUEST))

    assert "".join(d.content for d in deltas) == "thinking… done"


async def test_stall_mid_stream_times_out_and_drops_the_connection(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("Hel"))
        await watch.block()
        return response

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=0.2, total=10.0)
    client = make_client(session, await start_upstream(handler), timeouts=timeouts)
    received: list[str] = []

    with pytest.raises(ProviderTimeout, match=r"stalled for more than 0\.2s") as info:
        await collect_into(received, client.stream_chat(REQUEST))

    assert received == ["Hel"]
    assert info.value.retryable
    await watch.wait_disconnected()


async def test_server_that_never_sends_headers_times_out(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        await watch.block()
        return web.Response()

    timeouts = ChatTimeouts(connect=2.0, first_token=0.2, idle=5.0, total=10.0)
    client = make_client(session, await start_upstream(handler), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match="did not start answering"):
        await collect(client.stream_chat(REQUEST))
    await watch.wait_disconnected()


async def test_total_timeout_bounds_a_slow_answer(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("slow"))
        await watch.block()
        return response

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=0.3)
    client = make_client(session, await start_upstream(handler), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match=r"took longer than 0\.3s"):
        await collect(client.stream_chat(REQUEST))
    await watch.wait_disconnected()


class StallingResolver(AbstractResolver):
    """Name resolution that never answers: connecting never completes."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


async def test_connect_timeout() -> None:
    connector = aiohttp.TCPConnector(resolver=StallingResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        timeouts = ChatTimeouts(connect=0.2, first_token=5.0, idle=5.0, total=10.0)
        client = make_client(session, "http://upstream.invalid/v1", timeouts=timeouts)

        with pytest.raises(ProviderTimeout, match=r"could not connect .* within 0\.2s"):
            await collect(client.stream_chat(REQUEST))


# --- the gateway's own connection pool -------------------------------------------------

POOL_FULL = (
    r"no connection to the upstream came free within [\d.]+s: the gateway's connection pool is full"
)


async def test_waiting_for_a_free_pooled_connection_is_reported_as_a_full_pool(
    start_upstream: StartUpstream,
) -> None:
    release = asyncio.Event()
    requests = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal requests
        requests += 1
        response = await sse_response(request)
        await response.write(chunk("held"))
        await release.wait()
        await response.write(chunk(" open", finish="stop") + DONE)
        return response

    timeouts = ChatTimeouts(connect=0.2, first_token=5.0, idle=5.0, total=10.0)
    async with pooled_session(pool_size=1, headers={}) as session:
        client = make_client(session, await start_upstream(handler), timeouts=timeouts)
        holding = client.stream_chat(REQUEST)
        assert (await anext(holding)).content == "held"

        with pytest.raises(PoolExhausted, match=POOL_FULL) as info:
            await collect(client.stream_chat(REQUEST))
        assert "could not connect" not in info.value.message
        assert (info.value.kind, info.value.retryable) == (FailureKind.TIMEOUT, True)
        assert requests == 1  # the upstream never saw the request that found no connection

        release.set()
        assert [d.content for d in await collect(holding)] == [" open"]
        # The slot came back: the next request gets it.
        release.clear()
        again = client.stream_chat(REQUEST)
        assert (await anext(again)).content == "held"
        await close(again)
    assert requests == 2


async def test_a_stalled_connect_and_a_wait_for_its_pool_slot_are_told_apart() -> None:
    timeouts = ChatTimeouts(connect=0.2, first_token=5.0, idle=5.0, total=10.0)
    async with pooled_session(pool_size=1, headers={}, resolver=StallingResolver()) as session:
        client = make_client(session, "http://upstream.invalid/v1", timeouts=timeouts)
        # One request takes the only slot and never gets connected; the other waits for it.
        results = await asyncio.gather(
            collect(client.stream_chat(REQUEST)),
            collect(client.stream_chat(REQUEST)),
            return_exceptions=True,
        )

    (queued,) = [r for r in results if isinstance(r, PoolExhausted)]
    (connecting,) = [r for r in results if r is not queued]
    assert re.search(POOL_FULL, queued.message)
    assert isinstance(connecting, ProviderTimeout)
    assert "could not connect to the upstream within 0.2s" in connecting.message


# --- connection failures ------------------------------------------------------------


async def test_refused_connection_is_unavailable(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(session, f"http://127.0.0.1:{port}/v1")

    with pytest.raises(ProviderUnavailable, match="connection to the upstream failed") as info:
        await collect(client.stream_chat(REQUEST))
    assert info.value.retryable


async def test_reset_mid_stream_is_unavailable_after_the_delivered_deltas(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    reset_now = asyncio.Event()
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("Hel"))
        await reset_now.wait()
        assert request.transport is not None
        request.transport.abort()
        await watch.block()
        return response

    client = make_client(session, await start_upstream(handler))
    stream = client.stream_chat(REQUEST)

    assert (await anext(stream)).content == "Hel"
    reset_now.set()
    with pytest.raises(ProviderUnavailable, match="connection to the upstream failed"):
        await anext(stream)


# --- the consumer going away -------------------------------------------------------


async def test_closing_the_stream_early_closes_the_upstream_connection(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("Hel"))
        await watch.block()
        return response

    client = make_client(session, await start_upstream(handler))
    stream = client.stream_chat(REQUEST)

    assert (await anext(stream)).content == "Hel"
    await close(stream)

    await watch.wait_disconnected()


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    watch = Watch()
    first_delta = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = await sse_response(request)
        await response.write(chunk("Hel"))
        await watch.block()
        return response

    client = make_client(session, await start_upstream(handler))

    async def consume() -> None:
        async for _ in client.stream_chat(REQUEST):
            first_delta.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await first_delta.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await watch.wait_disconnected()


# --- upstream errors ----------------------------------------------------------------


async def test_refused_key_becomes_an_auth_error_without_the_key(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    mocked.post(
        COMPLETIONS,
        status=401,
        body=json.dumps({"error": {"code": 401, "message": f"Invalid key {KEY}"}}),
    )

    with pytest.raises(ProviderAuthError) as info:
        await collect(make_client(session).stream_chat(REQUEST))

    assert "API key for openrouter was refused" in str(info.value)
    assert KEY not in str(info.value)
    assert info.value.status == 401


async def test_rate_limit_carries_retry_after(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    mocked.post(
        COMPLETIONS,
        status=429,
        headers={"Retry-After": "9"},
        body=json.dumps({"error": {"code": 429, "message": "Slow down"}}),
    )

    with pytest.raises(ProviderRateLimited, match="Slow down") as info:
        await collect(make_client(session).stream_chat(REQUEST))
    assert info.value.retry_after == 9.0


async def test_huge_error_body_is_read_only_in_part(
    session: aiohttp.ClientSession, start_upstream: StartUpstream
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=400, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"context length exceeded " + b"x" * (4 * 1024 * 1024))
        await response.write_eof()
        return response

    client = make_client(session, await start_upstream(handler))

    with pytest.raises(ProviderBadRequest, match="context length exceeded") as info:
        await collect(client.stream_chat(REQUEST))
    assert len(info.value.message) < 400


async def test_error_chunk_after_tokens_raises_the_mapped_error(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    error_chunk = {
        "id": "gen-42",
        "object": "chat.completion.chunk",
        "error": {"code": 429, "message": "Provider rate limited mid-stream"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    wire = chunk("Hel") + f"data: {json.dumps(error_chunk)}\n\n".encode() + DONE
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")
    received: list[str] = []

    with pytest.raises(ProviderRateLimited, match="mid-stream"):
        await collect_into(received, make_client(session).stream_chat(REQUEST))
    assert received == ["Hel"]


async def test_sse_error_event_raises(session: aiohttp.ClientSession, mocked: aioresponses) -> None:
    wire = b'event: error\ndata: {"error": {"code": 400, "message": "bad stop"}}\n\n'
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    with pytest.raises(ProviderBadRequest, match="bad stop"):
        await collect(make_client(session).stream_chat(REQUEST))


async def test_invalid_json_in_a_data_event_is_a_protocol_error(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    wire = chunk("Hel") + b"data: {not json\n\n" + DONE
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    with pytest.raises(ProviderProtocolError, match="invalid JSON"):
        await collect(make_client(session).stream_chat(REQUEST))


async def test_html_page_with_status_200_is_a_protocol_error(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    mocked.post(COMPLETIONS, status=200, body="<html>login</html>", content_type="text/html")

    with pytest.raises(ProviderProtocolError, match="HTML"):
        await collect(make_client(session).stream_chat(REQUEST))


# --- how a stream ends ---------------------------------------------------------------


async def test_eof_after_a_finish_reason_without_done_is_a_complete_answer(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    wire = chunk("Hi") + chunk("", finish="length")
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    deltas = await collect(make_client(session).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hi", None), ("", "length")]


async def test_eof_before_any_finish_reason_is_an_early_end(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    mocked.post(COMPLETIONS, status=200, body=chunk("Hi"), content_type="text/event-stream")
    received: list[str] = []

    with pytest.raises(ProviderUnavailable, match="ended early"):
        await collect_into(received, make_client(session).stream_chat(REQUEST))
    assert received == ["Hi"]


async def test_done_ends_the_stream_even_if_more_follows(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    wire = chunk("Hi", finish="stop") + DONE + chunk("ignored")
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    deltas = await collect(make_client(session).stream_chat(REQUEST))

    assert [d.content for d in deltas] == ["Hi"]


async def test_named_events_and_empty_data_are_skipped(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    wire = b"event: ping\ndata: not json\n\ndata:\n\n" + chunk("Hi", finish="stop") + DONE
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    deltas = await collect(make_client(session).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hi", "stop")]


async def test_usage_on_a_chunk_that_also_carries_content(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2}  # no total, no cost
    wire = chunk("Hi") + chunk("!", finish="stop", usage=usage) + DONE
    mocked.post(COMPLETIONS, status=200, body=wire, content_type="text/event-stream")

    deltas = await collect(make_client(session).stream_chat(REQUEST))

    assert deltas[-1] == ChatDelta(
        content="!",
        finish_reason="stop",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5, cost=None),
        upstream_model="openai/gpt-4o-2024-08-06",
        response_id="gen-42",
    )


async def test_a_server_that_ignores_stream_and_answers_json(
    session: aiohttp.ClientSession, mocked: aioresponses
) -> None:
    answer = {
        "id": "cmpl-1",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }
    mocked.post(COMPLETIONS, status=200, payload=answer)

    deltas = await collect(make_client(session).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hello!", "stop")]
    assert deltas[0].usage == TokenUsage(prompt_tokens=4, completion_tokens=2, total_tokens=6)
