"""The in-process rate-limit store stays cheap with many clients: limits' own memory
store started an expiry pass over every key after almost every hit, hopping to a thread
once per key, so a gateway with a thousand clients paid a thousand thread hops a request."""

from __future__ import annotations

import asyncio
import gc
import random
import time

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from resolvers.limits.store import MemoryStore, in_process, open_storage


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_memory_uris_open_the_cheap_store() -> None:
    store = open_storage("memory://")
    assert isinstance(store, MemoryStore)
    assert in_process(store)


async def test_many_clients_cost_one_expiry_pass_a_second_and_no_thread_hops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_threads(*args: object, **kwargs: object) -> object:
        raise AssertionError("the expiry pass hopped to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    clock = Seconds()
    store = MemoryStore(clock=clock)
    limiter = MovingWindowRateLimiter(store)
    per_minute = parse("30/minute")

    for client in range(2000):
        assert await limiter.hit(per_minute, "ip", str(client))
        await asyncio.sleep(0)  # let a started pass run, as requests would
    assert store.passes == 1  # not one per request

    clock.advance(1.0)
    assert await limiter.hit(per_minute, "ip", "0")
    await asyncio.sleep(0)
    assert store.passes == 2
    assert store.timer is not None
    await store.timer


async def test_the_pass_still_drops_expired_entries_and_the_limit_still_holds() -> None:
    clock = Seconds()
    store = MemoryStore(clock=clock)
    limiter = MovingWindowRateLimiter(store)
    # Entries that expired at once (as a finished window's would) and live ones.
    for client in range(1200):
        assert await store.acquire_entry(f"gone/{client}", limit=5, expiry=0)
    twice = parse("2/minute")
    assert await limiter.hit(twice, "user", "alice")
    assert await limiter.hit(twice, "user", "alice")
    assert not await limiter.hit(twice, "user", "alice")

    clock.advance(1.0)
    assert await limiter.hit(parse("30/minute"), "ip", "new")
    assert store.timer is not None
    await store.timer

    assert not [key for key in store.windows if key.startswith("gone/")]
    assert not await limiter.hit(twice, "user", "alice")  # the live window is kept


async def test_a_window_holds_no_object_per_hit_for_the_garbage_collector() -> None:
    # limits' store kept one tracked object per hit for the whole window: with many
    # clients or a high limit, every full collection walked tens of thousands of them.
    store = MemoryStore()
    limiter = MovingWindowRateLimiter(store)
    many = parse("100000/minute")
    await limiter.hit(many, "ip", "warm")
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(5000):
        assert await limiter.hit(many, "ip", "busy")
    gc.collect()
    assert len(gc.get_objects()) - before < 50


async def test_the_moving_window_decides_as_limits_own_store_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Random hits of random sizes on a few keys, with time moving on by random steps:
    the same answers and the same window counts as limits' MemoryStorage."""
    now = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    ours = MemoryStore(clock=lambda: 0.0, wall_clock=lambda: now[0])
    theirs = MemoryStorage()
    rng = random.Random(7)
    refused = 0
    for _ in range(3000):
        key = rng.choice(["a", "b", "c"])
        limit, expiry = {"a": (5, 10), "b": (30, 60), "c": (1, 1)}[key]
        amount = rng.choice([1, 1, 1, 2, 3])
        now[0] += rng.choice([0.0, 0.01, 0.3, 1.0, 4.0])
        got = await ours.acquire_entry(key, limit, expiry, amount)
        assert got == await theirs.acquire_entry(key, limit, expiry, amount)
        refused += not got
        start, count = await ours.get_moving_window(key, limit, expiry)
        their_start, their_count = await theirs.get_moving_window(key, limit, expiry)
        assert count == their_count
        if count:  # the start of an empty window differs (theirs is an expired hit's time)
            assert start == their_start
    assert 0 < refused < 3000  # both answers were exercised
    if theirs.timer is not None:
        theirs.timer.cancel()
