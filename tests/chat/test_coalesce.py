"""Stream pieces: the first goes out at once, bursts are merged, nothing is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from resolvers.coalesce import coalesce


class Feed:
    """A source the test pushes pieces into."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        self.closed = False

    async def pieces(self) -> AsyncIterator[str]:
        try:
            while (item := await self.queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.closed = True


async def test_first_piece_at_once_then_a_burst_as_one_event() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=30.0)
    feed.queue.put_nowait("Hel")
    assert await asyncio.wait_for(anext(stream), 5) == "Hel"
    for piece in ("lo", ", ", "world"):
        feed.queue.put_nowait(piece)
    feed.queue.put_nowait(None)
    # The end of the source flushes the burst without waiting out the 30 s window.
    assert await asyncio.wait_for(anext(stream), 5) == "lo, world"
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(stream), 5)


async def test_no_window_passes_pieces_through() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=0)
    received = []
    for piece in ("a", "b", "c"):
        feed.queue.put_nowait(piece)
        received.append(await asyncio.wait_for(anext(stream), 5))
    assert received == ["a", "b", "c"]
    await stream.aclose()


async def test_an_error_arrives_after_what_came_before_it() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=30.0)
    feed.queue.put_nowait("first")
    assert await asyncio.wait_for(anext(stream), 5) == "first"
    feed.queue.put_nowait("partial")
    feed.queue.put_nowait(RuntimeError("upstream broke"))
    assert await asyncio.wait_for(anext(stream), 5) == "partial"
    with pytest.raises(RuntimeError, match="upstream broke"):
        await asyncio.wait_for(anext(stream), 5)


async def test_closing_the_stream_closes_the_source() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=0)
    feed.queue.put_nowait("x")
    assert await asyncio.wait_for(anext(stream), 5) == "x"
    await stream.aclose()
    assert feed.closed
