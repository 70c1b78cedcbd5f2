"""Each user's open-stream slots in Redis, so the cap holds across gateway processes.

A user's slots are one sorted set, `aipasta:streams:<user id>`: one member per open
stream, scored with the time its lease runs out. Taking a slot first drops the expired
leases, then adds one if fewer than `max_streams` are left, all in one script (so two
processes never both take the last slot). The process holding a slot renews its lease
every third of `LEASE_SECONDS` while the stream lives, and removes it when the stream
ends, however it ends; a process that dies without removing its slots stops renewing
them, and they free themselves within `LEASE_SECONDS`.

Lease times are the processes' own clocks: hosts whose clocks differ by a few seconds
(NTP) only shift a dead process's slots' release by as much.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from limits.aio.storage import RedisStorage, Storage

log = logging.getLogger("aipasta.rate_limit")

LEASE_SECONDS = 30.0
KEY_PREFIX = "aipasta:streams:"

# ARGV: now, lease seconds, max streams, slot id. 1 when the slot was taken.
_TAKE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2000))
return 1
"""
# ARGV: the leases' new end, lease seconds, then the slot ids. A lease lost while this
# process could not reach Redis is put back: the stream is still open.
_RENEW = """
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 2000))
return 1
"""
_RELEASE = """
return redis.call('ZREM', KEYS[1], ARGV[1])
"""


class _Script(Protocol):
    def __call__(self, keys: list[str], args: list[str | float | int]) -> Awaitable[Any]: ...


@dataclass(frozen=True)
class Lease:
    user_id: str
    slot: str


def redis_client(storage: Storage) -> Any | None:
    """The client `limits` opened for a Redis-family store (coredis, redis-py or valkey,
    which all register scripts alike), or None for any other store."""
    if not isinstance(storage, RedisStorage):
        return None
    return getattr(storage.bridge, "storage", None)


class SharedStreamSlots:
    def __init__(
        self,
        client: Any,
        *,
        max_streams: int,
        lease_seconds: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_failure: Callable[[Exception], None] = lambda exc: None,
    ) -> None:
        self._take: _Script = client.register_script(_TAKE)
        self._renew: _Script = client.register_script(_RENEW)
        self._release: _Script = client.register_script(_RELEASE)
        self._max_streams = max_streams
        self._lease_seconds = lease_seconds
        self._clock = clock
        self._sleep = sleep
        self._on_failure = on_failure
        self._process = secrets.token_hex(8)
        self._numbers = itertools.count()
        self._held: dict[str, set[str]] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def take(self, user_id: str) -> Lease | None:
        """A slot for one more of the user's streams, or None when all are taken."""
        slot = f"{self._process}:{next(self._numbers)}"
        taken = await self._take(
            keys=[KEY_PREFIX + user_id],
            args=[self._clock(), self._lease_seconds, self._max_streams, slot],
        )
        if not int(taken):
            return None
        self._held.setdefault(user_id, set()).add(slot)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._keep_renewing(), name="stream-leases")
        return Lease(user_id, slot)

    async def give_back(self, lease: Lease) -> None:
        """Free the slot; if Redis cannot be told now, its lease runs out by itself."""
        held = self._held.get(lease.user_id, set())
        held.discard(lease.slot)
        if not held:
            self._held.pop(lease.user_id, None)
        await self._release(keys=[KEY_PREFIX + lease.user_id], args=[lease.slot])

    async def renew(self) -> None:
        """Extend the lease of every slot this process holds."""
        ends = self._clock() + self._lease_seconds
        for user_id, slots in list(self._held.items()):
            if slots:
                await self._renew(
                    keys=[KEY_PREFIX + user_id], args=[ends, self._lease_seconds, *sorted(slots)]
                )

    async def _keep_renewing(self) -> None:
        while self._held:
            await self._sleep(self._lease_seconds / 3)
            try:
                await self.renew()
            except Exception as exc:  # noqa: BLE001 - retried at the next round
                self._on_failure(exc)

    async def close(self) -> None:
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
