"""The simulator in the test's event loop with its sleeps recorded instead of waited,
and the gateway's own catalog parser and chat client pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from functools import partial

import aiohttp
import pytest_asyncio

from providers.fetch import RetryPolicy
from providers.listing import ModelListing
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.openrouter import parse_openrouter_models
from providers.simulator import NAME, RunningSimulator, SimulatorConfig, start_simulator
from tests.support.clocks import Sleeps


class SimulatorClients:
    def __init__(self, running: RunningSimulator, http: aiohttp.ClientSession, sleeps: Sleeps):
        self.running = running
        self.http = http
        self.sleeps = sleeps
        self.chat = OpenAICompatibleClient(
            http, name=NAME, base_url=running.base_url, api_key=None, timeouts=ChatTimeouts()
        )

    def listing(self, **headers: str) -> ModelListing:
        return ModelListing(
            self.http,
            name=NAME,
            base_url=self.running.base_url,
            headers={"Accept": "application/json", **headers},
            policy=RetryPolicy(sleep=self.sleeps),
            parse=partial(parse_openrouter_models, provider=NAME),
            configured=True,
        )

    async def post(
        self, payload: dict[str, object], **headers: str
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        async with self.http.post(
            f"{self.running.base_url}/chat/completions", json=payload, headers=headers
        ) as response:
            return response, await response.read()


StartSimulator = Callable[..., Awaitable[SimulatorClients]]


@pytest_asyncio.fixture
async def simulator() -> AsyncIterator[StartSimulator]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(**config: float) -> SimulatorClients:
            sleeps = Sleeps()
            running = await start_simulator(
                SimulatorConfig(**{"token_delay": 0.0, **config}),  # type: ignore[arg-type]
                sleep=sleeps,
            )
            stack.push_async_callback(running.close)
            return SimulatorClients(running, http, sleeps)

        yield start
