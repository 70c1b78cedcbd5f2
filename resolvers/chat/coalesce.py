"""Merging stream pieces that arrive close together, to keep per-event overhead low.

The first piece goes out at once (time to first token is what users feel). After an
emit, pieces arriving within `window` seconds are gathered and sent as one. Reading
the source happens in its own task, so a consumer that is busy sending does not stall
the upstream read; but what is read ahead is bounded: once the pieces waiting for the
consumer hold `max_bytes` of memory, reading pauses until the consumer takes them (a
client that stops reading stops the upstream read instead of filling the memory).
Closing this generator cancels the reading task (which closes the upstream request).

`coalesce_batches` hands out each gathering as a list, for pieces that are not simply
concatenated (a run's typed pieces); `coalesce` joins strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Generic, TypeVar

_END = object()

T = TypeVar("T")


class _ReadAhead(Generic[T]):
    """Pieces read but not yet taken, bounded by the memory they hold (`sys.getsizeof`,
    so many tiny pieces count their per-object overhead too). One piece always fits,
    however large."""

    def __init__(self, max_bytes: int, size: Callable[[T], int]) -> None:
        self._pieces: list[T] = []
        self._size = 0
        self._max = max_bytes
        self._size_of = size
        # `_END` or the source's exception, once the source is done.
        self.ended: object = None
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, piece: T) -> None:
        await self._room.wait()
        self._pieces.append(piece)
        self._size += self._size_of(piece)
        if self._size >= self._max:
            self._room.clear()
        self._ready.set()

    def end(self, outcome: object) -> None:
        self.ended = outcome
        self._ready.set()

    async def wait(self) -> None:
        """Until there is a piece to take or the source ended."""
        await self._ready.wait()

    def take(self) -> list[T]:
        pieces, self._pieces, self._size = self._pieces, [], 0
        self._room.set()
        if self.ended is None:
            self._ready.clear()
        return pieces


async def coalesce(
    source: AsyncIterator[str], window: float, *, max_bytes: int
) -> AsyncGenerator[str, None]:
    batches = coalesce_batches(source, window, max_bytes=max_bytes, size=sys.getsizeof)
    async with contextlib.aclosing(batches) as gathered:
        async for batch in gathered:
            yield "".join(batch)


async def coalesce_batches(
    source: AsyncIterator[T], window: float, *, max_bytes: int, size: Callable[[T], int]
) -> AsyncGenerator[list[T], None]:
    """Like `coalesce`, each gathering as the list of its pieces; `size` is what one
    piece holds in memory."""
    ahead: _ReadAhead[T] = _ReadAhead(max_bytes, size)

    async def pump() -> None:
        try:
            async for piece in source:
                await ahead.put(piece)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            ahead.end(exc)
        else:
            ahead.end(_END)

    reader = asyncio.create_task(pump(), name="stream-reader")
    try:
        last_emit = float("-inf")
        while True:
            await ahead.wait()
            parts = ahead.take()
            if not parts:
                break  # the source ended and everything before its end went out
            while ahead.ended is None:
                remaining = last_emit + window - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        await ahead.wait()
                except TimeoutError:
                    break
                parts += ahead.take()
            yield parts
            last_emit = time.monotonic()
        if isinstance(ahead.ended, Exception):
            raise ahead.ended
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
