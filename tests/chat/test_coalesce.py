"""Stream pieces: the first goes out at once, bursts are merged, nothing is lost."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from resolvers.chat.coalesce import coalesce


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
    stream = coalesce(feed.pieces(), window=30.0, max_bytes=1 << 20)
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
    stream = coalesce(feed.pieces(), window=0, max_bytes=1 << 20)
    received = []
    for piece in ("a", "b", "c"):
        feed.queue.put_nowait(piece)
        received.append(await asyncio.wait_for(anext(stream), 5))
    assert received == ["a", "b", "c"]
    await stream.aclose()


async def test_an_error_arrives_after_what_came_before_it() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=30.0, max_bytes=1 << 20)
    feed.queue.put_nowait("first")
    assert await asyncio.wait_for(anext(stream), 5) == "first"
    feed.queue.put_nowait("partial")
    feed.queue.put_nowait(RuntimeError("upstream broke"))
    assert await asyncio.wait_for(anext(stream), 5) == "partial"
    with pytest.raises(RuntimeError, match="upstream broke"):
        await asyncio.wait_for(anext(stream), 5)


async def test_closing_the_stream_closes_the_source() -> None:
    feed = Feed()
    stream = coalesce(feed.pieces(), window=0, max_bytes=1 << 20)
    feed.queue.put_nowait("x")
    assert await asyncio.wait_for(anext(stream), 5) == "x"
    await stream.aclose()
    assert feed.closed


class Endless:
    """A source with no end that counts what was read from it; each piece costs a turn
    of the event loop, as a network read does."""

    def __init__(self, piece: str) -> None:
        self.piece = piece
        self.read = 0

    async def pieces(self) -> AsyncIterator[str]:
        while True:
            self.read += 1
            yield self.piece
            await asyncio.sleep(0)


async def test_reading_ahead_of_a_consumer_that_stops_is_bounded_by_memory() -> None:
    source = Endless("x" * 1000)
    per_piece = sys.getsizeof(source.piece)
    bound = 20 * per_piece
    stream = coalesce(source.pieces(), window=0, max_bytes=bound)
    assert await asyncio.wait_for(anext(stream), 5) == source.piece

    # The consumer stops taking pieces: however long the loop runs, the reader stops
    # once `bound` bytes wait (the first piece, 20 waiting, and one in hand).
    for _ in range(500):
        await asyncio.sleep(0)
    assert source.read == 1 + 20 + 1

    # Taking them lets reading go on, and nothing read was lost.
    assert await asyncio.wait_for(anext(stream), 5) == source.piece * 20
    for _ in range(500):
        await asyncio.sleep(0)
    assert source.read == 1 + 20 + 20 + 1
    await stream.aclose()


async def test_a_bounded_read_ahead_loses_nothing_and_keeps_the_order() -> None:
    async def numbered() -> AsyncIterator[str]:
        for i in range(300):
            yield f"{i},"
            await asyncio.sleep(0)

    stream = coalesce(numbered(), window=0, max_bytes=sys.getsizeof("0,") * 4)
    received = [piece async for piece in stream]
    assert "".join(received) == "".join(f"{i}," for i in range(300))
