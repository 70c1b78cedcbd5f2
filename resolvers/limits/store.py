"""The rate limiter's store: opening it from `AIPASTA_RATE_LIMIT_STORAGE`, and its state.

`limits` reaches Redis (and the other shared stores) through an optional client whose
supported versions it declares in its own extras (`limits[async-redis]` pins `coredis`).
Both a missing client and one of a version `limits` does not support are found here,
before anything starts, and reported in one line naming the variable and what to
install: with an unsupported client every check would fail, silently letting every
request through.

What a request gets while the store is unreachable is `AIPASTA_RATE_LIMIT_FAIL`: `open`
lets it through, `closed` refuses it with `SERVICE_UNAVAILABLE` (HTTP 503).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
import time
import urllib.parse
from collections import deque
from collections.abc import Callable

from limits.aio.storage import MemoryStorage, Storage
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from packaging.requirements import InvalidRequirement, Requirement

from resolvers.errors import StoreConfigError

SETTING = "AIPASTA_RATE_LIMIT_STORAGE"
# The `limits` extra each family of async schemes needs, and what to install for it.
_CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("async+redis", "async-redis", "aipasta[redis]"),
    ("async+valkey", "async-valkey", "limits[async-valkey]"),
    ("async+memcached", "async-memcached", "limits[async-memcached]"),
    ("async+mongodb", "async-mongodb", "limits[async-mongodb]"),
)


def async_uri(uri: str) -> str:
    """A plain scheme (`memory://`, `redis://`) means its async variant: the gateway never
    blocks its event loop on the store."""
    scheme = urllib.parse.urlparse(uri).scheme
    return uri if scheme.startswith("async+") else f"async+{uri}"


def shown(uri: str) -> str:
    """The URI as a log line may show it: scheme, host and port, never a password."""
    parts = urllib.parse.urlparse(uri)
    where = parts.hostname or parts.path or ""
    if parts.port is not None:
        where = f"{where}:{parts.port}"
    return f"{parts.scheme}://{where}"


def open_storage(uri: str) -> Storage:
    """The async `limits` store for `uri`, or StoreConfigError saying what to do."""
    given = f"{SETTING}={shown(uri)}"
    uri = async_uri(uri)
    _check_client(uri, given)
    try:
        storage = storage_from_string(uri)
    except ConfigurationError as exc:
        # limits' own message may quote the whole URI, password included.
        raise StoreConfigError(
            f"{given} is not a rate limit store limits can open "
            "(e.g. memory:// or redis://host:6379)"
        ) from exc
    if not isinstance(storage, Storage):
        raise StoreConfigError(f"{given} is not an async rate limit store")
    if type(storage) is MemoryStorage:
        return MemoryStore()
    return storage


class MemoryStore(MemoryStorage):
    """limits' in-memory store with a moving window of plain timestamps and a cheap expiry.

    limits 5.8's MemoryStorage keeps each key's moving window as a list of `Entry`
    objects, newest first: every hit makes an object the garbage collector tracks (and
    inserts it at the front of the list), and each of them lives as long as the window.
    With many clients, or a high limit, the windows hold tens of thousands of tracked
    objects, and each full collection walks them all: under load the collector took
    about a quarter of the gateway's CPU, in pauses of 100 ms and more. Here a key's
    window is a `deque` of float timestamps, oldest first (one tracked object per key;
    floats are not tracked), trimmed from the old end as it is read.

    limits' store also started a new expiry pass over every key on the first hit after
    the last pass ended (so about once per request under load), and each pass hopped to
    a thread once per key. Here a pass starts at most every `EXPIRY_EVERY` seconds and
    only drops the windows whose newest timestamp has expired, yielding to the loop
    every `KEYS_PER_TURN` keys. No await between reading and changing a window, so no
    lock is needed.

    The moving window answers as limits' does: a hit of `amount` is refused when the
    window already holds more than `limit - amount` timestamps of the last `expiry`
    seconds. The fixed and sliding window counters are limits' own (unused here).
    """

    EXPIRY_EVERY = 1.0
    KEYS_PER_TURN = 500

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._clock = clock
        self._time = wall_clock
        self._next_pass = 0.0
        self.passes = 0
        # Per key: (timestamps oldest first, the window's length in seconds).
        self.windows: dict[str, tuple[deque[float], float]] = {}

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        self._schedule_expiry()
        now = self._time()
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = (deque(), float(expiry))
        times = _trimmed(window[0], now - expiry)
        if len(times) + amount > limit:
            return False
        times.extend(itertools.repeat(now, amount))
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(the oldest timestamp in the window, how many there are)."""
        now = self._time()
        window = self.windows.get(key)
        if window is None:
            return now, 0
        cutoff = now - expiry
        times = _trimmed(window[0], cutoff)
        # As limits counts here: only what is strictly younger than the cutoff.
        at_cutoff = next((i for i, t in enumerate(times) if t != cutoff), len(times))
        count = len(times) - at_cutoff
        return (times[at_cutoff], count) if count else (now, 0)

    async def clear(self, key: str) -> None:
        self.windows.pop(key, None)
        await super().clear(key)

    async def reset(self) -> int | None:
        count = len(self.windows)
        self.windows.clear()
        return max(count, await super().reset() or 0)

    # The name limits' own counter methods call (private to MemoryStorage, hence the
    # mangling): their expiry goes through the same bounded pass.
    async def _MemoryStorage__schedule_expiry(self) -> None:
        self._schedule_expiry()

    def _schedule_expiry(self) -> None:
        now = self._clock()
        if now < self._next_pass or (self.timer is not None and not self.timer.done()):
            return
        self._next_pass = now + self.EXPIRY_EVERY
        self.timer = asyncio.create_task(self._expire(), name="rate-limit-expiry")

    async def _expire(self) -> None:
        self.passes += 1
        now = self._time()
        for done, key in enumerate(list(self.windows)):
            if done and done % self.KEYS_PER_TURN == 0:
                await asyncio.sleep(0)
            window = self.windows.get(key)
            if window is not None and (not window[0] or window[0][-1] < now - window[1]):
                del self.windows[key]
        for key, expires in list(self.expirations.items()):
            if expires <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


def _trimmed(times: deque[float], cutoff: float) -> deque[float]:
    """`times` without the timestamps older than `cutoff` (they are at its left)."""
    while times and times[0] < cutoff:
        times.popleft()
    return times


def _check_client(uri: str, given: str) -> None:
    scheme = urllib.parse.urlparse(uri).scheme
    for prefix, extra, install in _CLIENTS:
        if scheme.startswith(prefix):
            problem = _client_problem(extra)
            if problem is not None:
                raise StoreConfigError(f"{given} needs {problem}: pip install '{install}'")
            return


def _client_problem(extra: str) -> str | None:
    """Why the client packages `limits[extra]` names are not usable, or None."""
    for text in importlib.metadata.requires("limits") or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or not marker.evaluate({"extra": extra}):
            continue
        supported = f"{requirement.name}{requirement.specifier}"
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return f"{supported}, which is not installed"
        if not requirement.specifier.contains(installed, prereleases=True):
            return f"{supported} (the version limits supports), not {requirement.name} {installed}"
    return None


def in_process(storage: Storage) -> bool:
    """Whether the counts live in this process's memory (nothing to reach, nothing shared)."""
    # Exactly these two: another subclass (a plug-in store) may well reach elsewhere.
    return type(storage) in (MemoryStorage, MemoryStore)
