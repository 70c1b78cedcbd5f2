"""Injected time for tests: a clock the test moves and a sleep the test releases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ManualSleep:
    """An injected sleep that returns only when the test calls `release()`; each call is
    counted, so a test can wait until a task has got as far as its next pause."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._released = asyncio.Event()
        self._called = asyncio.Condition()

    async def __call__(self, delay: float) -> None:
        released = self._released
        self.delays.append(delay)
        async with self._called:
            self._called.notify_all()
        await released.wait()

    def release(self) -> None:
        """End every sleep under way now (later ones wait for the next release)."""
        self._released.set()
        self._released = asyncio.Event()

    async def wait_for_calls(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._called:
            await self._called.wait_for(lambda: len(self.delays) >= count)


class Sleeps:
    """An injected sleep that returns at once and writes down how long it was asked to
    wait (for code that waits between tries: no test waits for real)."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
