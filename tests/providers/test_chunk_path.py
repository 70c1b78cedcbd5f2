"""One upstream chunk from the socket to its delta: what the fast paths must keep.

Most chunks carry a piece of text and nothing else and take a shorter way (decoded by
orjson, no readers of absent fields, one timer per stream instead of one per read);
everything else must come out as it did before: numbers kept exactly as sent, text
next to reasoning and tool calls, usage in the last chunk, errors mid-stream, a slow
consumer that is not a stalled upstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from providers.chat import ChatDelta, ChatRequest, ToolSpec
from providers.errors import ProviderTimeout, ProviderUnavailable
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.payload import Dialect
from tests.support.fake_upstream import FakeUpstream, Raw, Stall, Wait, steps

MODEL = "org/thinker"
REQUEST = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
TIMEOUTS = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=10.0)
DONE = b"data: [DONE]\n\n"
HUGE = 123456789012345678901234567890  # past 64 bits: orjson would read it as a float


def sse(document: dict[str, Any] | str) -> bytes:
    text = document if isinstance(document, str) else json.dumps(document)
    return f"data: {text}\n\n".encode()


def chunk(delta: dict[str, Any], *, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "gen-7",
        "model": "org/thinker-2026",
        "choices": [{"index": 0, "delta": {"role": "assistant", **delta}, "finish_reason": finish}],
        **extra,
    }


def client(
    session: aiohttp.ClientSession, upstream: FakeUpstream, *, idle: float = TIMEOUTS.idle
) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        session,
        name="openrouter",
        base_url=upstream.url("v1"),
        api_key=SecretStr("sk-test"),
        timeouts=replace(TIMEOUTS, idle=idle),
        dialect=Dialect.OPENROUTER,
    )


async def deltas_of(upstream: FakeUpstream, *wire: bytes) -> list[ChatDelta]:
    upstream.script(MODEL, steps(*(Raw(piece) for piece in wire), done=False))
    async with aiohttp.ClientSession() as session:
        stream: AsyncIterator[ChatDelta] = client(session, upstream).stream_chat(REQUEST)
        return [delta async for delta in stream]


async def test_numbers_past_64_bits_are_kept_exactly(upstream: FakeUpstream) -> None:
    detail = {"type": "reasoning.text", "text": "hm", "index": 0, "nonce": HUGE}
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": {"n": HUGE}}}
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": HUGE}
    deltas = await deltas_of(
        upstream,
        sse(chunk({"content": "a", "reasoning": "hm", "reasoning_details": [detail]})),
        sse(chunk({"content": None, "tool_calls": [call]})),
        sse(chunk({"content": ""}, finish="tool_calls")),
        sse({"id": "gen-7", "choices": [], "usage": usage}),
        DONE,
    )

    assert deltas[0].reasoning_details == (detail,)
    assert deltas[1].tool_calls[0].arguments == f'{{"n":{HUGE}}}'
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.cost == Decimal(HUGE)


async def test_text_chunks_with_what_only_json_reads_keep_their_text(
    upstream: FakeUpstream,
) -> None:
    # NaN and a huge integer in fields the gateway does not read: orjson refuses the
    # first and rounds the second; neither may cost the text.
    nan = json.dumps(chunk({"content": "Hel"})).replace('"id"', '"created": NaN, "id"')
    deltas = await deltas_of(
        upstream,
        sse(nan),
        sse(chunk({"content": "lo"}, created=HUGE)),
        sse(chunk({"content": " wörld 🌍"}, finish="stop")),
        DONE,
    )

    assert "".join(d.content for d in deltas) == "Hello wörld 🌍"
    assert [d.upstream_model for d in deltas] == ["org/thinker-2026"] * 3
    assert [d.generation_id for d in deltas] == ["gen-7"] * 3


async def test_reasoning_and_tool_calls_mid_stream_between_text(upstream: FakeUpstream) -> None:
    first = {"index": 0, "id": "c1", "function": {"name": "look", "arguments": '{"q":'}}
    rest = {"index": 0, "function": {"arguments": ' "x"}'}}
    usage = {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}
    wire = b"".join(
        (
            sse(chunk({"content": "Let me "})),
            sse(chunk({"content": "", "reasoning": "think"})),
            sse(chunk({"content": "see."})),
            sse(chunk({"content": None, "tool_calls": [first]})),
            sse(chunk({"content": None, "tool_calls": [rest]})),
            sse(chunk({"content": ""}, finish="tool_calls", usage=usage)),
            DONE,
        )
    )
    # Cut in the middle of events, and one byte at a time across the tool call.
    cut = wire.index(b'"tool_calls"')
    deltas = await deltas_of(
        upstream, wire[:7], wire[7:cut], *(wire[i : i + 1] for i in range(cut, len(wire)))
    )

    assert [(d.content, d.reasoning) for d in deltas[:3]] == [
        ("Let me ", ""),
        ("", "think"),
        ("see.", ""),
    ]
    assert [f.arguments for d in deltas[3:5] for f in d.tool_calls] == ['{"q":', ' "x"}']
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.total_tokens == 12


async def test_an_error_after_text_ends_the_stream_with_it(upstream: FakeUpstream) -> None:
    error = {"error": {"code": 502, "message": "provider went away"}}
    upstream.script(
        MODEL,
        steps(
            Raw(sse(chunk({"content": "Hel"}))),
            Raw(sse({**chunk({"content": ""}, finish="error"), **error})),
            done=False,
        ),
    )
    received: list[str] = []

    async def read_all(stream: AsyncIterator[ChatDelta]) -> None:
        async for delta in stream:
            received.append(delta.content)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ProviderUnavailable, match="provider went away"):
            await read_all(client(session, upstream).stream_chat(REQUEST))

    assert received == ["Hel"]


async def test_a_consumer_slower_than_the_idle_timeout_is_not_a_stall(
    upstream: FakeUpstream,
) -> None:
    gate = asyncio.Event()
    upstream.script(
        MODEL,
        steps(
            Raw(sse(chunk({"content": "Hel"}))),
            Wait(gate),
            Raw(sse(chunk({"content": "lo"}, finish="stop")) + DONE),
            done=False,
        ),
    )
    async with aiohttp.ClientSession() as session:
        stream = client(session, upstream, idle=0.2).stream_chat(REQUEST)
        first = await anext(stream)
        await asyncio.sleep(0.5)  # the client busy elsewhere, not reading
        gate.set()
        rest = [delta.content async for delta in stream]

    assert [first.content, *rest] == ["Hel", "lo"]


async def test_a_stall_after_a_slow_consumer_still_times_out(upstream: FakeUpstream) -> None:
    gate = asyncio.Event()
    upstream.script(
        MODEL, steps(Raw(sse(chunk({"content": "Hel"}))), Wait(gate), Stall(), done=False)
    )
    async with aiohttp.ClientSession() as session:
        stream = client(session, upstream, idle=0.2).stream_chat(REQUEST)
        await anext(stream)
        await asyncio.sleep(0.5)  # long enough for the idle timer to go off unread
        gate.set()
        with pytest.raises(ProviderTimeout, match=r"stalled for more than 0\.2s"):
            await anext(stream)
    await upstream.chats[0].wait_closed(within=5)


async def test_the_request_body_is_the_json_of_the_request(upstream: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"n": {"maximum": HUGE}}}
    request = ChatRequest(
        model=MODEL,
        messages=[{"role": "user", "content": "Grüße 🌍"}],
        temperature=0.5,
        tools=(ToolSpec(name="f", parameters=schema),),
    )
    upstream.script(MODEL, steps(Raw(sse(chunk({"content": "ok"}, finish="stop")) + DONE)))
    async with aiohttp.ClientSession() as session:
        _ = [d async for d in client(session, upstream).stream_chat(request)]

    body = upstream.chats[0].body
    assert upstream.chats[0].headers["Content-Type"] == "application/json"
    assert body["messages"] == [{"role": "user", "content": "Grüße 🌍"}]
    assert body["temperature"] == 0.5
    assert body["tools"][0]["function"]["parameters"] == schema
