"""The scripted provider plays exactly what a test queued, in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from providers.chat import ChatDelta, ChatProvider, ChatRequest, TokenUsage
from providers.errors import ProviderRateLimited, ProviderTimeout
from providers.fake import FakeProvider, NothingEnqueuedError

REQUEST = ChatRequest(model="fake/model", messages=[{"role": "user", "content": "Hi"}])


async def collect(stream: AsyncIterator[ChatDelta]) -> list[ChatDelta]:
    return [delta async for delta in stream]


async def test_strings_become_content_deltas_and_a_stop_is_added() -> None:
    provider: ChatProvider = FakeProvider()
    assert isinstance(provider, FakeProvider)
    provider.enqueue("Hel", "lo")

    deltas = await collect(provider.stream_chat(REQUEST))

    assert deltas == [
        ChatDelta(content="Hel"),
        ChatDelta(content="lo"),
        ChatDelta(content="", finish_reason="stop"),
    ]


async def test_scripted_deltas_are_played_as_given() -> None:
    usage = TokenUsage(prompt_tokens=1, completion_tokens=2, total_tokens=3)
    provider = FakeProvider()
    provider.enqueue("Hi", ChatDelta(content="", finish_reason="length", usage=usage))

    deltas = await collect(provider.stream_chat(REQUEST))

    assert deltas == [ChatDelta(content="Hi"), ChatDelta("", finish_reason="length", usage=usage)]


async def test_no_finish_delta_when_disabled() -> None:
    provider = FakeProvider()
    provider.enqueue("partial", finish=None)

    assert await collect(provider.stream_chat(REQUEST)) == [ChatDelta(content="partial")]


async def test_each_call_plays_the_next_script_and_requests_are_recorded() -> None:
    provider = FakeProvider(name="openrouter")
    provider.enqueue("first")
    provider.enqueue("second")
    other = ChatRequest(model="fake/other", messages=[], temperature=0.5)

    one = await collect(provider.stream_chat(REQUEST))
    two = await collect(provider.stream_chat(other))

    assert one[0].content == "first"
    assert two[0].content == "second"
    assert provider.requests == [REQUEST, other]
    assert provider.pending == 0


async def test_exception_before_any_delta() -> None:
    provider = FakeProvider()
    provider.enqueue(ProviderRateLimited("slow down", provider="fake", retry_after=3.0))

    with pytest.raises(ProviderRateLimited) as info:
        await collect(provider.stream_chat(REQUEST))
    assert info.value.retry_after == 3.0


async def test_exception_after_some_deltas() -> None:
    provider = FakeProvider()
    provider.enqueue("Hel", ProviderTimeout("stalled", provider="fake"), "never sent")
    stream = provider.stream_chat(REQUEST)

    assert (await anext(stream)).content == "Hel"
    with pytest.raises(ProviderTimeout):
        await anext(stream)
    assert provider.closed_early == 0


async def test_calling_with_nothing_enqueued_fails_loudly() -> None:
    provider = FakeProvider()
    provider.enqueue("only one")
    await collect(provider.stream_chat(REQUEST))

    with pytest.raises(NothingEnqueuedError, match=r"call #2 .*nothing was enqueued"):
        provider.stream_chat(REQUEST)
    assert len(provider.requests) == 2


async def test_inline_event_pauses_the_stream_until_set() -> None:
    provider = FakeProvider()
    gate = asyncio.Event()
    provider.enqueue("Hel", gate, "lo")
    stream = provider.stream_chat(REQUEST)
    assert (await anext(stream)).content == "Hel"

    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # one loop turn: the stream reaches the gate
    assert not waiting.done()
    gate.set()

    assert (await waiting).content == "lo"


async def test_hold_keeps_the_stream_open_after_its_items() -> None:
    provider = FakeProvider()
    hold = asyncio.Event()
    provider.enqueue("Hel", "lo", hold=hold)
    received: list[str] = []

    async def consume() -> None:
        async for delta in provider.stream_chat(REQUEST):
            received.append(delta.content)

    task = asyncio.create_task(consume())
    for _ in range(5):
        await asyncio.sleep(0)
    assert received == ["Hel", "lo"]
    assert not task.done()

    hold.set()
    await task
    assert received == ["Hel", "lo", ""]


async def test_abandoned_streams_are_counted() -> None:
    provider = FakeProvider()
    provider.enqueue("Hel", asyncio.Event())
    provider.enqueue("done")
    provider.enqueue("Hel", "lo")

    stream = provider.stream_chat(REQUEST)
    await anext(stream)
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await collect(provider.stream_chat(REQUEST))
    assert provider.closed_early == 1

    stream = provider.stream_chat(REQUEST)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert provider.closed_early == 2
