"""Rate limits per client IP and per signed-in user, and a cap on each user's open streams.

Who is limited by what (resolvers.limits.admission runs them in this order):
- the flood guard, `ip_flood_limit` per IP for every operation, before sign-in: it bounds
  the credential lookups one address can cause;
- an anonymous operation (no credential, or one that was refused) counts against its
  IP's `rate_limit`;
- a signed-in one counts against its user's `user_rate_limit` only, so the users behind
  one server (a Next.js frontend) do not share that server's anonymous budget.

Limits use the `limits` library's moving window: a client gets at most N operations in
any window, with no burst of 2N across a window boundary as a fixed window would allow.
The counts live in `AIPASTA_RATE_LIMIT_STORAGE` (process memory by default; a shared
store such as `redis://` when several processes serve the same clients, see
`resolvers.limits.store`).

With a Redis store the open-stream cap holds across processes too (`resolvers.limits.stream_slots`);
with any other store it is counted in this process only.

A failing store never takes the gateway down: the failure is counted in `store_failures`
and logged at most once a minute, and the request goes through
(`AIPASTA_RATE_LIMIT_FAIL=open`) or is refused with `SERVICE_UNAVAILABLE` (`closed`).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter

from aipasta.settings import FailMode, Settings
from resolvers.errors import RateLimited, StoreUnavailable, whole_seconds
from resolvers.limits.store import in_process, open_storage
from resolvers.limits.stream_slots import Lease, SharedStreamSlots, redis_client

log = logging.getLogger("aipasta.rate_limit")

# "flood" is the per-IP guard counted before sign-in; to the client it is the address's.
Scope = Literal["flood", "ip", "user"]

# A store that does not answer in this time counts as failed: every request waits on it.
STORE_TIMEOUT_SECONDS = 1.0
FAILURE_LOG_INTERVAL_SECONDS = 60.0
# A stream slot frees whenever one of the user's streams ends; there is no window to wait
# for, so the client is told to try again soon.
STREAM_RETRY_SECONDS = 1.0
# Anyone with IPv6 has at least a /64 to pick addresses from.
IPV6_PREFIX = 64


@dataclass(frozen=True)
class RateDecision:
    """The answer for one operation; `limit`/`remaining` are those of the tightest limit
    (the one that refused, when refused)."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    scope: Scope
    # Refused because the store is down and the limiter fails closed.
    store_down: bool = False

    @property
    def status(self) -> int:
        """The HTTP status of a refusal."""
        return 503 if self.store_down else 429

    def error(self) -> RateLimited | StoreUnavailable:
        if self.store_down:
            return StoreUnavailable()
        who = "this user" if self.scope == "user" else "this address"
        return RateLimited(
            f"Rate limit exceeded for {who}: retry in {whole_seconds(self.retry_after)} s",
            retry_after=self.retry_after,
            limit=self.limit,
            remaining=self.remaining,
        )

    def extensions(self) -> dict[str, Any]:
        return self.error().extensions


class RateLimiter:
    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage | None = None,
        store_timeout: float = STORE_TIMEOUT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ip_limits = parse_many(settings.rate_limit)
        self._user_limits = parse_many(settings.user_rate_limit)
        self._flood_limits = parse_many(settings.ip_flood_limit)
        self._max_streams = settings.max_streams_per_user
        self._storage = storage or open_storage(settings.rate_limit_storage)
        self._strategy = MovingWindowRateLimiter(self._storage)
        self._streams: dict[str, int] = {}
        self._store_timeout = store_timeout
        self._monotonic = monotonic
        self._last_failure_log: float | None = None
        self._unlogged_failures = 0
        self.store_failures = 0
        self._fail_closed = settings.rate_limit_fail is FailMode.CLOSED
        # None until the store first answered or failed; always True in memory.
        self._in_memory = in_process(self._storage)
        self._store_up: bool | None = True if self._in_memory else None
        client = redis_client(self._storage)
        self._shared_streams = (
            None
            if client is None
            else SharedStreamSlots(
                client, max_streams=self._max_streams, on_failure=self._store_failed
            )
        )

    @classmethod
    def with_defaults(cls) -> RateLimiter:
        """A limiter with the settings' built-in defaults, reading no environment."""
        return cls(Settings.model_construct())

    async def flood(self, *, client_ip: str) -> RateDecision:
        """Count one operation against the IP's flood guard (before sign-in)."""
        return await self._guarded(self._flood_limits, "flood", ip_key(client_ip))

    async def check(self, *, client_ip: str, user_id: str | None) -> RateDecision:
        """Count one operation against its user when signed in, else against its IP."""
        if user_id is not None:
            return await self._guarded(self._user_limits, "user", user_id)
        return await self._guarded(self._ip_limits, "ip", ip_key(client_ip))

    async def _guarded(self, items: list[RateLimitItem], scope: Scope, key: str) -> RateDecision:
        try:
            if self._in_memory:
                # Process memory answers without waiting: no timer to arm per request.
                decision = await self._hit(items, scope, key)
            else:
                async with asyncio.timeout(self._store_timeout):
                    decision = await self._hit(items, scope, key)
        except Exception as exc:  # noqa: BLE001 - any store fault is the fail mode's
            self._store_failed(exc)
            tightest = min(item.amount for item in items)
            if self._fail_closed:
                return RateDecision(False, tightest, 0, 0.0, scope, store_down=True)
            return RateDecision(True, tightest, tightest, 0.0, scope)
        self._store_up = True
        return decision

    async def _hit(self, items: list[RateLimitItem], scope: Scope, key: str) -> RateDecision:
        tightest: RateDecision | None = None
        for item in items:
            allowed = await self._strategy.hit(item, "aipasta", scope, key)
            stats = await self._strategy.get_window_stats(item, "aipasta", scope, key)
            if not allowed:
                retry_after = max(0.0, stats.reset_time - time.time())
                return RateDecision(False, item.amount, 0, retry_after, scope)
            decision = RateDecision(True, item.amount, max(0, stats.remaining), 0.0, scope)
            if tightest is None or decision.remaining < tightest.remaining:
                tightest = decision
        assert tightest is not None  # parse_many never returns an empty list
        return tightest

    def _store_failed(self, exc: Exception) -> None:
        self._store_up = False
        self.store_failures += 1
        self._unlogged_failures += 1
        now = self._monotonic()
        last = self._last_failure_log
        if last is not None and now - last < FAILURE_LOG_INTERVAL_SECONDS:
            return
        log.error(
            "rate limit store failed %d time(s); requests are %s: %r",
            self._unlogged_failures,
            "refused" if self._fail_closed else "let through unlimited",
            exc,
        )
        self._last_failure_log = now
        self._unlogged_failures = 0

    @asynccontextmanager
    async def stream_slot(self, user_id: str) -> AsyncIterator[None]:
        """Hold one of the user's `max_streams_per_user` stream slots: across processes
        with a Redis store, else (or while it is down and failing open) in this process."""
        lease = await self._take_shared_stream(user_id)
        open_now = self._streams.get(user_id, 0)
        if lease is None and open_now >= self._max_streams:
            raise self._too_many_streams()
        self._streams[user_id] = open_now + 1
        try:
            yield
        finally:
            left = self._streams[user_id] - 1
            if left:
                self._streams[user_id] = left
            else:
                del self._streams[user_id]
            if lease is not None:
                await self._give_back_stream(lease)

    def _too_many_streams(self) -> RateLimited:
        return RateLimited(
            f"Too many open streams: at most {self._max_streams} at once per user; "
            "end one before starting another",
            retry_after=STREAM_RETRY_SECONDS,
            limit=self._max_streams,
        )

    async def _take_shared_stream(self, user_id: str) -> Lease | None:
        """The user's slot in the shared store; None when there is none or it is down
        and failing open (the per-process count applies then)."""
        if self._shared_streams is None:
            return None
        try:
            async with asyncio.timeout(self._store_timeout):
                lease = await self._shared_streams.take(user_id)
        except Exception as exc:  # noqa: BLE001 - any store fault is the fail mode's
            self._store_failed(exc)
            if self._fail_closed:
                raise StoreUnavailable() from None
            return None
        self._store_up = True
        if lease is None:
            raise self._too_many_streams()
        return lease

    async def _give_back_stream(self, lease: Lease) -> None:
        assert self._shared_streams is not None
        try:
            async with asyncio.timeout(self._store_timeout):
                await self._shared_streams.give_back(lease)
        except Exception as exc:  # noqa: BLE001 - the slot's lease runs out by itself
            self._store_failed(exc)

    def open_streams(self, user_id: str) -> int:
        return self._streams.get(user_id, 0)

    @property
    def open_streams_total(self) -> int:
        return sum(self._streams.values())

    @property
    def store_shared(self) -> bool:
        """Whether the counts live outside this process (and so hold across processes)."""
        return not in_process(self._storage)

    @property
    def store_up(self) -> bool:
        """Whether the store answered the last time it was asked (memory always does)."""
        return self._store_up is not False

    async def ping_store(self) -> bool:
        """Ask the store now (for health); the answer is also what /metrics shows."""
        if self.store_shared:
            try:
                async with asyncio.timeout(self._store_timeout):
                    self._store_up = await self._storage.check()
            except Exception:  # noqa: BLE001 - unreachable in any way is down
                self._store_up = False
        return self.store_up

    async def close(self) -> None:
        if self._shared_streams is not None:
            await self._shared_streams.close()
        # The memory store expires entries in a task of its own; don't leave it pending.
        timer = getattr(self._storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)


@functools.lru_cache(maxsize=4096)
def ip_key(client_ip: str) -> str:
    """The rate limit key for an address: IPv6 clients are counted per /64."""
    try:
        address = ipaddress.ip_address(client_ip)
        if address.version == 6:
            return str(ipaddress.ip_network((address, IPV6_PREFIX), strict=False))
    except ValueError:
        return client_ip
    return str(address)
