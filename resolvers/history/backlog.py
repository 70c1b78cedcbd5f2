"""History writes waiting for MongoDB: an answer is never lost because its copy could
not be saved when it was ready.

`defer()` only appends to a bounded in-memory queue (like the usage records'
buffer, resolvers.usage.recorder): no I/O, no await. A background task makes the
writes, oldest first, whenever the database is available, and `close()` tries once
more at shutdown. A write that finds MongoDB away again stays at the front, so
the writes of one exchange (the user's message, then each answer) keep their order.

The queue holds at most `max_pending` writes: beyond that the oldest waiting one is
dropped, counted in `dropped` and logged (a warning when dropping starts, the total
once a write succeeds again). A write that fails for another reason (a bug, a refused
document) is logged and counted in `rejected`, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from documents.database import Database
from documents.errors import DatabaseTimeout, DatabaseUnavailable

log = logging.getLogger(__name__)

Write = Callable[[], Awaitable[object]]
# What says "not now": MongoDB away, or too slow for this attempt.
NOT_NOW = (DatabaseUnavailable, DatabaseTimeout)


@dataclass(frozen=True, slots=True)
class _Deferred:
    what: str
    write: Write


class HistoryBacklog:
    def __init__(
        self, database: Database | None, *, max_pending: int = 10_000, retry_seconds: float = 1.0
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._database = database
        self._max_pending = max_pending
        self._retry_seconds = retry_seconds
        self._queue: deque[_Deferred] = deque()
        self._dropped = 0
        self._dropped_unreported = 0
        self._rejected = 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def dropped(self) -> int:
        """Writes given up because the queue was full (or there is no database)."""
        return self._dropped

    @property
    def rejected(self) -> int:
        return self._rejected

    def defer(self, write: Write, *, what: str) -> None:
        """Make `write` later, after every write deferred before it."""
        if self._database is None:
            self._drop(1)
            return
        self._queue.append(_Deferred(what, write))
        # Never the one being made (the first, while a flush runs).
        excess = max(len(self._queue) - self._max_pending, 0)
        if excess and self._lock.locked():
            first = self._queue.popleft()
            for _ in range(excess):
                self._queue.popleft()
            self._queue.appendleft(first)
        else:
            for _ in range(excess):
                self._queue.popleft()
        self._drop(excess)
        self._wake.set()

    async def start(self) -> None:
        if self._task is None and self._database is not None:
            self._task = asyncio.create_task(self._run(), name="history-backlog")

    async def flush(self) -> int:
        """Make the waiting writes in order; stops at the first that finds MongoDB away.
        Returns how many were made."""
        made = 0
        async with self._lock:
            while self._queue:
                # Left in the queue while it is made: `pending` counts it until done.
                deferred = self._queue[0]
                try:
                    await deferred.write()
                except NOT_NOW:
                    return made
                except Exception:
                    self._rejected += 1
                    log.exception("history write %s refused; not retried", deferred.what)
                else:
                    made += 1
                self._queue.popleft()
            if self._dropped_unreported:
                log.warning(
                    "%d history writes were dropped while MongoDB was unavailable",
                    self._dropped_unreported,
                )
                self._dropped_unreported = 0
        return made

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._database is not None and self._database.available:
            await self.flush()
        if self._queue:
            log.warning("%d history writes were not made before shutdown", len(self._queue))

    async def _run(self) -> None:
        database = self._database
        assert database is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                if await database.wait_connected(self._retry_seconds):
                    await self.flush()
                if self._queue:
                    # Still away (or away again): try again on the interval only.
                    await asyncio.sleep(self._retry_seconds)

    def _drop(self, count: int) -> None:
        if count <= 0:
            return
        if self._dropped_unreported == 0:
            log.warning(
                "history backlog full (%d writes) or no database: dropping the oldest",
                self._max_pending,
            )
        self._dropped += count
        self._dropped_unreported += count
