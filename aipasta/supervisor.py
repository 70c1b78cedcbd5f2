"""The API server keeps the embedded database running: started again when it exits.

The server checks every `AIPASTA_EMBEDDED_CHECK_SECONDS` that the database process it
leases still lives. When it has exited, the server takes the data folder's lock and
either finds the server another `aipasta` process already started again, or starts one
itself (on the same port when it is free, see aipasta/embedded.py). A start that fails,
or a server that dies again soon after starting, is retried with a back-off that doubles
up to `AIPASTA_EMBEDDED_RESTART_MAX_BACKOFF`. When the database comes back on another
port, the app's client follows it. The log and /health say what is going on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aipasta.embedded import EmbeddedError, EmbeddedMongo, Lease
from documents.database import Database
from resolvers.monitoring.health import RESTARTING, RUNNING, STARTING

log = logging.getLogger("aipasta")

Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]


class EmbeddedSupervisor:
    def __init__(
        self,
        embedded: EmbeddedMongo,
        *,
        check_seconds: float = 1.0,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self._embedded = embedded
        self._check_seconds = check_seconds
        self._backoff_seconds = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep
        self._clock = clock
        self._lease: Lease | None = None
        self._up_since = 0.0
        self._delay = backoff_seconds
        self._database: Database | None = None
        self._task: asyncio.Task[None] | None = None
        self.state = STARTING
        self.restarts = 0
        self.failed_attempts = 0

    @property
    def lease(self) -> Lease | None:
        return self._lease

    async def start(self) -> bool:
        """One attempt now; False (said in the log) when it failed and will be retried."""
        return await self._attempt()

    def watch(self, database: Database) -> None:
        """Keep `database` pointed at the running server, and the server running."""
        self._database = database
        self._task = asyncio.create_task(self._run(), name="embedded-database-supervisor")

    async def stop_watching(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def close(self) -> None:
        """Give the lease back: the last user to leave stops the server."""
        await self.stop_watching()
        if self._lease is not None:
            await asyncio.to_thread(self._embedded.release, self._lease)
            self._lease = None

    async def _run(self) -> None:
        while True:
            if self.state == RUNNING:
                await self._sleep(self._check_seconds)
                assert self._lease is not None
                if await asyncio.to_thread(self._embedded.running, self._lease):
                    continue
                self._exited()
                if self._clock() - self._up_since >= self._max_backoff:
                    self._delay = self._backoff_seconds  # it ran long enough: try at once
                    if await self._attempt():
                        continue
            await self._sleep(self._delay)
            self._delay = min(self._delay * 2, self._max_backoff)
            await self._attempt()

    def _exited(self) -> None:
        assert self._lease is not None
        self.state = RESTARTING
        log.warning(
            "embedded database (pid %d) exited; starting it again with the same data",
            self._lease.pid,
        )

    async def _attempt(self) -> bool:
        lease = self._lease
        try:
            if lease is None:
                fresh = await asyncio.to_thread(self._embedded.acquire)
            else:
                fresh = await asyncio.to_thread(self._embedded.ensure, lease)
        except (EmbeddedError, OSError) as exc:
            self.failed_attempts += 1
            # One clear line, no traceback: the message says what to do.
            log.error(  # noqa: TRY400
                "embedded database unavailable: %s; trying again in %gs", exc, self._delay
            )
            return False
        self._lease = fresh
        self._up_since = self._clock()
        if self.state == RESTARTING:
            self.restarts += 1
            log.warning(
                "embedded database running again (pid %d, port %d; restart %d)",
                fresh.pid,
                fresh.port,
                self.restarts,
            )
        self.state = RUNNING
        self.failed_attempts = 0
        if self._database is not None:
            await self._database.move_to(fresh.uri)
        return True
