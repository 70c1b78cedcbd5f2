"""The OpenAI-compatible streaming client, against the fake upstream on 127.0.0.1.

Whole answers are `Reply`s; delivery (split chunks, keep-alives, stalls, resets and
disconnects) is played by `Stream` steps.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
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
from tests.support.fake_upstream import (
    FakeUpstream,
    Raw,
    Reply,
    Reset,
    Sleep,
    Stall,
    Wait,
    hang,
    steps,
)

KEY = "sk-or-v1-test0123456789abcdef0123456789"
URL = "https://upstream.test/api/v1"
SSE = {"Content-Type": "text/event-stream"}
MODEL = "openai/gpt-4o"
RELAXED = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=10.0)
REQUEST = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
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


# --- a complete answer over the network ------------------------------------------


async def test_streams_an_openrouter_answer_delivered_in_odd_pieces(
    session: aiohttp.ClientSession, upstream: FakeUpstream
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
    # 7-byte pieces cut through CRLFs and multi-byte chars.
    pieces = (Raw(wire[start : start + 7]) for start in range(0, len(wire), 7))
    upstream.script(MODEL, steps(*pieces, done=False))
    client = make_client(
        session,
        upstream.url("v1"),
        extra_headers={"HTTP-Referer": "https://pasta.test", "X-Title": "AI"},
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

    body, headers = upstream.chats[0].body, upstream.chats[0].headers
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
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    # The end of the chunked body arrives separately, after [DONE]: the client has
    # to wait for it, or the half-finished connection cannot be reused.
    upstream.default(MODEL, steps(Raw(chunk("ok", finish="stop") + DONE), Sleep(0.02), done=False))
    client = make_client(session, upstream.url("v1"))

    for _ in range(3):
        assert [d.content for d in await collect(client.stream_chat(REQUEST))] == ["ok"]

    peers = [call.peer for call in upstream.chats]
    assert len(peers) == 3
    assert len(set(peers)) == 1, "each request opened a new connection"


async def test_no_authorization_header_without_a_key(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, steps(Raw(chunk("ok", finish="stop") + DONE), done=False))

    client = make_client(session, upstream.url("v1"), api_key=None)
    await collect(client.stream_chat(REQUEST))
    headers = [call.headers for call in upstream.chats]

    assert "Authorization" not in headers[0]
    assert "ok" not in repr(client)
    assert KEY not in repr(make_client(session))


# --- timeouts -----------------------------------------------------------------------


async def test_keepalive_comments_do_not_count_as_the_first_token(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, steps(Raw(KEEPALIVE * 20), Stall()))

    timeouts = ChatTimeouts(connect=2.0, first_token=0.2, idle=5.0, total=10.0)
    client = make_client(session, upstream.url("v1"), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match=r"did not start answering within 0\.2s"):
        await collect(client.stream_chat(REQUEST))
    await upstream.chats[0].wait_closed(within=5)


async def test_keepalive_comments_keep_a_pausing_stream_alive(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    # A 0.4 s pause in the answer, longer than the idle timeout, filled with
    # keep-alives as OpenRouter does while a reasoning model works.
    pause = (Sleep(0.04), Raw(KEEPALIVE)) * 10
    upstream.script(
        MODEL,
        steps(
            Raw(chunk("thinking…")), *pause, Raw(chunk(" done", finish="stop") + DONE), done=False
        ),
    )

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=0.25, total=10.0)
    client = make_client(session, upstream.url("v1"), timeouts=timeouts)

    deltas = await collect(client.stream_chat(REQUEST))

    assert "".join(d.content for d in deltas) == "thinking… done"


async def test_stall_mid_stream_times_out_and_drops_the_connection(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, steps(Raw(chunk("Hel")), Stall()))

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=0.2, total=10.0)
    client = make_client(session, upstream.url("v1"), timeouts=timeouts)
    received: list[str] = []

    with pytest.raises(ProviderTimeout, match=r"stalled for more than 0\.2s") as info:
        await collect_into(received, client.stream_chat(REQUEST))

    assert received == ["Hel"]
    assert info.value.retryable
    await upstream.chats[0].wait_closed(within=5)


async def test_server_that_never_sends_headers_times_out(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, hang())

    timeouts = ChatTimeouts(connect=2.0, first_token=0.2, idle=5.0, total=10.0)
    client = make_client(session, upstream.url("v1"), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match="did not start answering"):
        await collect(client.stream_chat(REQUEST))
    await upstream.chats[0].wait_closed(within=5)


async def test_total_timeout_bounds_a_slow_answer(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, steps(Raw(chunk("slow")), Stall()))

    timeouts = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=0.3)
    client = make_client(session, upstream.url("v1"), timeouts=timeouts)

    with pytest.raises(ProviderTimeout, match=r"took longer than 0\.3s"):
        await collect(client.stream_chat(REQUEST))
    await upstream.chats[0].wait_closed(within=5)


class StallingResolver(AbstractResolver):
    """Name resolution that never answers: connecting never completes. `entered` is set
    once a connection attempt is stuck here."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.entered.set()
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
    upstream: FakeUpstream,
) -> None:
    release = asyncio.Event()
    held = steps(Raw(chunk("held")), Wait(release), Raw(chunk(" open", finish="stop") + DONE))
    upstream.default(MODEL, held)

    timeouts = ChatTimeouts(connect=0.2, first_token=5.0, idle=5.0, total=10.0)
    async with pooled_session(pool_size=1, headers={}) as session:
        client = make_client(session, upstream.url("v1"), timeouts=timeouts)
        holding = client.stream_chat(REQUEST)
        assert (await anext(holding)).content == "held"

        with pytest.raises(PoolExhausted, match=POOL_FULL) as info:
            await collect(client.stream_chat(REQUEST))
        assert "could not connect" not in info.value.message
        assert (info.value.kind, info.value.retryable) == (FailureKind.TIMEOUT, True)
        # the upstream never saw the request that found no connection
        assert len(upstream.chats) == 1

        release.set()
        assert [d.content for d in await collect(holding)] == [" open"]
        # The slot came back: the next request gets it.
        release.clear()
        again = client.stream_chat(REQUEST)
        assert (await anext(again)).content == "held"
        await close(again)
    assert len(upstream.chats) == 2


async def test_a_stalled_connect_and_a_wait_for_its_pool_slot_are_told_apart() -> None:
    resolver = StallingResolver()
    async with pooled_session(pool_size=1, headers={}, resolver=resolver) as session:
        # One request takes the only slot and never gets connected; the other waits for
        # it. The waiting one gives up first, so the slot never frees while it waits.
        url = "http://upstream.invalid/v1"
        holder = make_client(
            session, url, timeouts=ChatTimeouts(connect=0.6, first_token=5.0, idle=5.0, total=10.0)
        )
        waiter = make_client(
            session, url, timeouts=ChatTimeouts(connect=0.2, first_token=5.0, idle=5.0, total=10.0)
        )
        holding = asyncio.create_task(collect(holder.stream_chat(REQUEST)))
        await resolver.entered.wait()
        with pytest.raises(PoolExhausted) as queued:
            await collect(waiter.stream_chat(REQUEST))
        with pytest.raises(ProviderTimeout) as stalled:
            await holding
    connecting = stalled.value
    assert re.search(POOL_FULL, queued.value.message)
    assert isinstance(connecting, ProviderTimeout)
    assert "could not connect to the upstream within 0.6s" in connecting.message


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
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    reset_now = asyncio.Event()
    upstream.script(MODEL, steps(Raw(chunk("Hel")), Wait(reset_now), Reset()))

    client = make_client(session, upstream.url("v1"))
    stream = client.stream_chat(REQUEST)

    assert (await anext(stream)).content == "Hel"
    reset_now.set()
    with pytest.raises(ProviderUnavailable, match="connection to the upstream failed"):
        await anext(stream)


# --- the consumer going away -------------------------------------------------------


async def test_closing_the_stream_early_closes_the_upstream_connection(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, steps(Raw(chunk("Hel")), Stall()))

    client = make_client(session, upstream.url("v1"))
    stream = client.stream_chat(REQUEST)

    assert (await anext(stream)).content == "Hel"
    await close(stream)

    await upstream.chats[0].wait_closed(within=5)


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    first_delta = asyncio.Event()
    upstream.script(MODEL, steps(Raw(chunk("Hel")), Stall()))

    client = make_client(session, upstream.url("v1"))

    async def consume() -> None:
        async for _ in client.stream_chat(REQUEST):
            first_delta.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(5):
        await first_delta.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    await upstream.chats[0].wait_closed(within=5)


# --- upstream errors ----------------------------------------------------------------


async def test_refused_key_becomes_an_auth_error_without_the_key(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    error = {"error": {"code": 401, "message": f"Invalid key {KEY}"}}
    upstream.script(MODEL, Reply(status=401, raw=json.dumps(error).encode()))

    with pytest.raises(ProviderAuthError) as info:
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert "API key for openrouter was refused" in str(info.value)
    assert KEY not in str(info.value)
    assert info.value.status == 401


async def test_rate_limit_carries_retry_after(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    error = {"error": {"code": 429, "message": "Slow down"}}
    upstream.script(
        MODEL, Reply(status=429, raw=json.dumps(error).encode(), headers={"Retry-After": "9"})
    )

    with pytest.raises(ProviderRateLimited, match="Slow down") as info:
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))
    assert info.value.retry_after == 9.0


async def test_huge_error_body_is_read_only_in_part(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    huge = b"context length exceeded " + b"x" * (4 * 1024 * 1024)
    upstream.script(MODEL, Reply(status=400, raw=huge, headers={"Content-Type": "text/plain"}))

    client = make_client(session, upstream.url("v1"))

    with pytest.raises(ProviderBadRequest, match="context length exceeded") as info:
        await collect(client.stream_chat(REQUEST))
    assert len(info.value.message) < 400


async def test_error_chunk_after_tokens_raises_the_mapped_error(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    error_chunk = {
        "id": "gen-42",
        "object": "chat.completion.chunk",
        "error": {"code": 429, "message": "Provider rate limited mid-stream"},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    wire = chunk("Hel") + f"data: {json.dumps(error_chunk)}\n\n".encode() + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))
    received: list[str] = []

    with pytest.raises(ProviderRateLimited, match="mid-stream"):
        await collect_into(received, make_client(session, upstream.url("v1")).stream_chat(REQUEST))
    assert received == ["Hel"]


async def test_sse_error_event_raises(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = b'event: error\ndata: {"error": {"code": 400, "message": "bad stop"}}\n\n'
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    with pytest.raises(ProviderBadRequest, match="bad stop"):
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))


async def test_invalid_json_in_a_data_event_is_a_protocol_error(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = chunk("Hel") + b"data: {not json\n\n" + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    with pytest.raises(ProviderProtocolError, match="invalid JSON"):
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))


async def test_a_data_event_with_spaces_around_its_json_is_read(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    spaced = b'data:  {"choices": [{"delta": {"content": "Hi"}}]} \t\n\n'
    wire = spaced + chunk(finish="stop") + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert [d.content for d in deltas] == ["Hi", ""]


async def test_a_data_event_with_text_after_its_json_is_a_protocol_error(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = b'data: {"choices": []} {"choices": []}\n\n' + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    with pytest.raises(ProviderProtocolError, match="invalid JSON"):
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))


async def test_html_page_with_status_200_is_a_protocol_error(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, Reply(raw=b"<html>login</html>", headers={"Content-Type": "text/html"}))

    with pytest.raises(ProviderProtocolError, match="HTML"):
        await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))


# --- how a stream ends ---------------------------------------------------------------


async def test_eof_after_a_finish_reason_without_done_is_a_complete_answer(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = chunk("Hi") + chunk("", finish="length")
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hi", None), ("", "length")]


async def test_eof_before_any_finish_reason_is_an_early_end(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    upstream.script(MODEL, Reply(raw=chunk("Hi"), headers=SSE))
    received: list[str] = []

    with pytest.raises(ProviderUnavailable, match="ended early"):
        await collect_into(received, make_client(session, upstream.url("v1")).stream_chat(REQUEST))
    assert received == ["Hi"]


async def test_done_ends_the_stream_even_if_more_follows(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = chunk("Hi", finish="stop") + DONE + chunk("ignored")
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert [d.content for d in deltas] == ["Hi"]


async def test_named_events_and_empty_data_are_skipped(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    wire = b"event: ping\ndata: not json\n\ndata:\n\n" + chunk("Hi", finish="stop") + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hi", "stop")]


async def test_usage_on_a_chunk_that_also_carries_content(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2}  # no total, no cost
    wire = chunk("Hi") + chunk("!", finish="stop", usage=usage) + DONE
    upstream.script(MODEL, Reply(raw=wire, headers=SSE))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert deltas[-1] == ChatDelta(
        content="!",
        finish_reason="stop",
        usage=TokenUsage(prompt_tokens=3, completion_tokens=2, total_tokens=5, cost=None),
        upstream_model="openai/gpt-4o-2024-08-06",
        response_id="gen-42",
    )


async def test_a_server_that_ignores_stream_and_answers_json(
    session: aiohttp.ClientSession, upstream: FakeUpstream
) -> None:
    answer = {
        "id": "cmpl-1",
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6},
    }
    upstream.script(MODEL, Reply(body=answer))

    deltas = await collect(make_client(session, upstream.url("v1")).stream_chat(REQUEST))

    assert [(d.content, d.finish_reason) for d in deltas] == [("Hello!", "stop")]
    assert deltas[0].usage == TokenUsage(prompt_tokens=4, completion_tokens=2, total_tokens=6)
