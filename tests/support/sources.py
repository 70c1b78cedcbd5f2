"""An in-memory ModelSource with scripted answers, for catalog service tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from providers.errors import ProviderError, ProviderUnavailable
from providers.model import ModelInfo


def model(provider: str, upstream_id: str, **kwargs: object) -> ModelInfo:
    return ModelInfo(provider=provider, upstream_id=upstream_id, name=upstream_id, **kwargs)  # type: ignore[arg-type]


class ScriptedSource:
    def __init__(self, name: str, models: list[ModelInfo] | None = None) -> None:
        self.name = name
        self.configured = True
        self.models = models if models is not None else [model(name, f"{name}-model")]
        self.calls = 0
        self.fail_with: ProviderError | None = None
        self.gate: asyncio.Event | None = None
        self._called = asyncio.Condition()

    async def list_models(self) -> list[ModelInfo]:
        self.calls += 1
        async with self._called:
            self._called.notify_all()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return list(self.models)

    async def wait_for_calls(self, count: int, within: float = 5.0) -> None:
        async with asyncio.timeout(within), self._called:
            await self._called.wait_for(lambda: self.calls >= count)

    def break_with_503(self) -> None:
        self.fail_with = ProviderUnavailable("HTTP 503", provider=self.name, status=503)


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
