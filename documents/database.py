"""The app's one MongoDB client, and what happens when MongoDB is away.

The gateway starts and answers without MongoDB: `start()` never raises for an
unreachable server, it keeps retrying in the background. Operations run inside
`guard()`, which turns a lost connection into DatabaseUnavailable (fast, no stack
trace for the client) and sets the reconnect loop going again. An operation that runs
past its timeout fails alone, as DatabaseTimeout: a slow query is not an outage, and
only a failed ping, server selection or connection marks the database down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pymongo
from beanie import Document, init_beanie
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    PyMongoError,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
)
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from documents.errors import DatabaseTimeout, DatabaseUnavailable

log = logging.getLogger(__name__)


def is_operation_timeout(exc: BaseException) -> bool:
    """One operation ran out of time (a slow query, a full pool), the server being there:
    not a failed server selection, which is pymongo finding no server at all."""
    if isinstance(exc, ServerSelectionTimeoutError):
        return False
    if isinstance(exc, NetworkTimeout | WaitQueueTimeoutError | ExecutionTimeout):
        return True
    return isinstance(exc, PyMongoError) and bool(getattr(exc, "timeout", False))


def is_connection_lost(exc: BaseException) -> bool:
    """MongoDB itself is out of reach, as opposed to busy (a slow query, a full pool)."""
    if is_operation_timeout(exc):
        return False
    return isinstance(exc, ServerSelectionTimeoutError | AutoReconnect)


def is_unavailable_error(exc: BaseException) -> bool:
    """Errors meaning "cannot reach MongoDB in time", as opposed to a bad query."""
    if isinstance(exc, ConnectionFailure | ExecutionTimeout):
        return True
    return isinstance(exc, PyMongoError) and bool(getattr(exc, "timeout", False))


class Database:
    def __init__(
        self,
        uri: str,
        *,
        db_name: str,
        document_models: Sequence[type[Document]],
        connect_timeout_ms: int = 2000,
        operation_timeout_ms: int = 5000,
        retry_seconds: float = 2.0,
        event_listeners: Sequence[monitoring.CommandListener] = (),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._uri = uri
        self._client_options: dict[str, Any] = {
            "serverSelectionTimeoutMS": connect_timeout_ms,
            "connectTimeoutMS": connect_timeout_ms,
            "timeoutMS": operation_timeout_ms,
            "appname": "aipasta",
            "tz_aware": True,
            # Acknowledged means journaled: a write the client was told about survives a
            # crash of the server right after (history, keys, usage all go through here).
            "journal": True,
            "event_listeners": list(event_listeners),
        }
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri, **self._client_options
        )
        self._db: AsyncDatabase[dict[str, Any]] = self._client.get_default_database(default=db_name)
        self._models = list(document_models)
        self._ping_timeout = connect_timeout_ms / 1000
        self._operation_timeout = operation_timeout_ms / 1000
        self._retry_seconds = retry_seconds
        self._sleep = sleep
        self._available = False
        self._reconnect_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def available(self) -> bool:
        return self._available

    @property
    def name(self) -> str:
        return self._db.name

    @property
    def round_trip_seconds(self) -> float | None:
        """The driver's moving average of the round trip to MongoDB (the slowest server
        it knows), from its own heartbeats: no I/O here. None while it has none or while
        the database is down."""
        if not self._available:
            return None
        trips = [
            server.round_trip_time
            for server in self._client.topology_description.server_descriptions().values()
            if server.round_trip_time is not None
        ]
        return max(trips, default=None)

    @property
    def db(self) -> AsyncDatabase[dict[str, Any]]:
        return self._db

    async def start(self) -> None:
        """Connect now if MongoDB answers; otherwise keep trying in the background."""
        try:
            await self._connect()
        except PyMongoError as exc:
            log.warning("database unreachable at start (%s); retrying in the background", _why(exc))
            self._schedule_reconnect()

    async def wait_connected(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), within)
        except TimeoutError:
            return False
        return True

    async def ping(self) -> bool:
        """True when MongoDB answers now. Cheap when it is known to be down."""
        if not self._available:
            return False
        try:
            await asyncio.wait_for(self._db.command("ping"), self._ping_timeout)
        except (PyMongoError, TimeoutError) as exc:
            self.mark_down(exc)
            return False
        return True

    def mark_down(self, exc: BaseException) -> None:
        if self._available:
            log.warning("database connection lost (%s); reconnecting in the background", _why(exc))
        self._available = False
        self._connected.clear()
        self._schedule_reconnect()

    @contextlib.asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run database work; an unreachable MongoDB becomes DatabaseUnavailable, an
        operation past its timeout DatabaseTimeout (and leaves the database up)."""
        if not self._available:
            raise DatabaseUnavailable()
        try:
            yield
        except PyMongoError as exc:
            if not is_unavailable_error(exc):
                raise
            if is_operation_timeout(exc):
                raise DatabaseTimeout(self._operation_timeout) from None
            # Overload is not an outage: only a lost server sends everyone to the reconnect loop.
            if is_connection_lost(exc):
                self.mark_down(exc)
            raise DatabaseUnavailable() from None

    @property
    def uri(self) -> str:
        return self._uri

    async def move_to(self, uri: str) -> None:
        """Follow MongoDB to a new address (the embedded server came back on another port)."""
        if uri == self._uri:
            return
        old = self._client
        self._uri = uri
        self._client = AsyncMongoClient(uri, **self._client_options)
        self._db = self._client.get_default_database(default=self._db.name)
        # Connect at once: a server that answers on its new address keeps the database
        # up, so requests between the move and a background reconnect are not refused.
        try:
            await self._connect()
        except PyMongoError as exc:
            self.mark_down(exc)
        await old.close()

    async def close(self) -> None:
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
        await self._client.close()

    async def _connect(self) -> None:
        # The client's operation timeout would otherwise stretch this first answer.
        with pymongo.timeout(self._ping_timeout):
            await self._db.command("ping")
        await init_beanie(database=self._db, document_models=self._models)
        self._available = True
        self._connected.set()
        log.info("database connected (%s)", self._db.name)

    def _schedule_reconnect(self) -> None:
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(
                self._reconnect_loop(), name="database-reconnect"
            )

    async def _reconnect_loop(self) -> None:
        """Every `retry_seconds`, until MongoDB answers."""

        def still_down(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            assert error is not None  # only a failed try is retried
            log.debug("database still unreachable: %s", _why(error))

        attempts = AsyncRetrying(
            retry=retry_if_exception_type(PyMongoError),
            wait=wait_fixed(self._retry_seconds),
            before_sleep=still_down,
            sleep=lambda seconds: self._sleep(float(seconds)),
        )
        await self._sleep(self._retry_seconds)
        await attempts(self._connect)


def _why(exc: BaseException) -> str:
    # pymongo's messages can carry the full topology description; the class is enough.
    return type(exc).__name__
