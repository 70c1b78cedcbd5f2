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
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Generic, TypeVar

_END = object()

T = TypeVar("T")


class _ReadAhead(Generic[T]):
    """Pieces read but not yet taken, bounded by the memory they hold (`sys.getsizeof`,
    so many tiny pieces count their per-object overhead too). One piece always fits,
    however large.

    One consumer waits at a time, on a bare future that a piece, the source's end or
    its deadline resolves: no `asyncio.Event`, no `asyncio.timeout` and no TimeoutError
    per event (they were a measurable share of a stream's CPU)."""

    def __init__(self, max_bytes: int, size: Callable[[T], int]) -> None:
        self._pieces: list[T] = []
        self._size = 0
        self._max = max_bytes
        self._size_of = size
        # `_END` or the source's exception, once the source is done.
        self.ended: object = None
        self._waiter: asyncio.Future[None] | None = None
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, piece: T) -> None:
        if not self._room.is_set():
            await self._room.wait()
        self._pieces.append(piece)
        self._size += self._size_of(piece)
        if self._size >= self._max:
            self._room.clear()
        self._wake()

    def end(self, outcome: object) -> None:
        self.ended = outcome
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def ready(self) -> bool:
        """Whether there is a piece to take or the source ended."""
        return bool(self._pieces) or self.ended is not None

    async def wait(self, deadline: float | None = None) -> bool:
        """Until there is a piece to take or the source ended (True), or until the
        event loop's clock reaches `deadline` (False)."""
        if self.ready:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        timer = None if deadline is None else loop.call_at(deadline, _expire, waiter)
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()
        return self.ready

    def take(self) -> list[T]:
        pieces, self._pieces, self._size = self._pieces, [], 0
        self._room.set()
        return pieces


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
    loop = asyncio.get_running_loop()
    try:
        last_emit = float("-inf")
        while True:
            await ahead.wait()
            parts = ahead.take()
            if not parts:
                break  # the source ended and everything before its end went out
            deadline = last_emit + window
            while ahead.ended is None and loop.time() < deadline:
                if not await ahead.wait(deadline):
                    break
                parts += ahead.take()
            yield parts
            last_emit = loop.time()
        if isinstance(ahead.ended, Exception):
            raise ahead.ended
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
