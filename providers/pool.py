"""The HTTP session every provider client shares, and telling a full pool from a slow upstream.

aiohttp's `ClientTimeout.connect` covers both the wait for a free slot in the connection
pool and opening the socket, and both end in the same `ConnectionTimeoutError`. Its
tracing signals do tell them apart: a request that has to queue for a slot gets
`on_connection_queued_start`, and `on_connection_queued_end` once it has one. A request
passes a `PoolWait`'s `context` as its `trace_request_ctx`; if it times out while still
queued, the gateway's own pool was full and the upstream was never asked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver

from providers.errors import PoolExhausted

log = logging.getLogger(__name__)

_KEY = "aipasta_pool_wait"


class PoolWait:
    """One request's wait for a pooled connection."""

    __slots__ = ("_pool_size", "_queued_at", "_waiting")

    def __init__(self) -> None:
        self._queued_at: float | None = None
        self._waiting = False
        self._pool_size = 0

    @property
    def context(self) -> Mapping[str, PoolWait]:
        """What to pass as the request's `trace_request_ctx`."""
        return {_KEY: self}

    def queued(self, pool_size: int) -> None:
        if self._queued_at is None:
            self._queued_at = asyncio.get_running_loop().time()
        self._waiting = True
        self._pool_size = pool_size

    def dequeued(self) -> None:
        self._waiting = False

    def exhausted(self, provider: str) -> PoolExhausted | None:
        """The error to report for a timeout now, if the request is still queued."""
        if not self._waiting or self._queued_at is None:
            return None
        waited = round(asyncio.get_running_loop().time() - self._queued_at, 1)
        log.warning(
            "%s: no upstream connection came free within %gs: all %d are in use "
            "(AIPASTA_UPSTREAM_POOL_SIZE)",
            provider,
            waited,
            self._pool_size,
        )
        return PoolExhausted(
            f"no connection to the upstream came free within {waited:g}s: "
            "the gateway's connection pool is full",
            provider=provider,
        )


def _wait_of(context: SimpleNamespace) -> PoolWait | None:
    request_context = context.trace_request_ctx
    wait = request_context.get(_KEY) if isinstance(request_context, Mapping) else None
    return wait if isinstance(wait, PoolWait) else None


async def _queued(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceConnectionQueuedStartParams,
) -> None:
    if (wait := _wait_of(context)) is not None:
        wait.queued(session.connector.limit if session.connector else 0)


async def _dequeued(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceConnectionQueuedEndParams,
) -> None:
    if (wait := _wait_of(context)) is not None:
        wait.dequeued()


def pooled_session(
    *,
    pool_size: int,
    headers: Mapping[str, str],
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A session whose pool holds at most `pool_size` connections to all upstreams together
    (any one host may use all of them), reporting pool waits to `PoolWait`s.

    Must be called with an event loop running, as aiohttp's session requires.
    """
    if pool_size < 1:
        # aiohttp reads 0 as "no limit": file descriptors would run out instead.
        raise ValueError("the upstream pool needs at least one connection")
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_queued_start.append(_queued)
    tracing.on_connection_queued_end.append(_dequeued)
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=pool_size, resolver=resolver),
        headers=dict(headers),
        trace_configs=[tracing],
    )
