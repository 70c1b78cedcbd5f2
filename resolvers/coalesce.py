"""Merging stream pieces that arrive close together, to keep per-event overhead low.

The first piece goes out at once (time to first token is what users feel). After an
emit, pieces arriving within `window` seconds are gathered and sent as one. Reading
the source happens in its own task, so a slow consumer never stalls the upstream read,
and closing this generator cancels that task (which closes the upstream request).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

_END = object()


async def coalesce(source: AsyncIterator[str], window: float) -> AsyncGenerator[str, None]:
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for piece in source:
                queue.put_nowait(piece)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            queue.put_nowait(exc)
        else:
            queue.put_nowait(_END)

    reader = asyncio.create_task(pump(), name="stream-reader")
    try:
        last_emit = float("-inf")
        ended: object = None
        while ended is None:
            first = await queue.get()
            if first is _END or isinstance(first, Exception):
                ended = first
                break
            parts = [str(first)]
            deadline = last_emit + window
            while ended is None:
                while not queue.empty():
                    item = queue.get_nowait()
                    if item is _END or isinstance(item, Exception):
                        ended = item
                        break
                    parts.append(str(item))
                remaining = deadline - time.monotonic()
                if ended is not None or remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await queue.get()
                except TimeoutError:
                    break
                if item is _END or isinstance(item, Exception):
                    ended = item
                else:
                    parts.append(str(item))
            yield "".join(parts)
            last_emit = time.monotonic()
        if isinstance(ended, Exception):
            raise ended
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
