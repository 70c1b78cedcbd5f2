"""Gateway CPU per GraphQL operation, in process: from `schema.execute` (or `subscribe`)
receiving a query text to its result, over the real schema with the scripted fake
provider (no HTTP, no database). What each operation costs beyond its resolver's own
work: the schema extensions, validation, argument conversion, the operation log line.

Prints process CPU per operation (time.process_time over many iterations, best of
`--runs`) for:
- `{ __typename }`;
- the `chat` mutation with a 2-message input, answered by the fake provider;
- `chatStream` subscribed up to its first event (then closed).

    .venv/bin/python bench/operation.py [--iterations 2000] [--runs 3] [--profile N]

`--profile N` prints the N most expensive functions (cumulative) of the chat mutation.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.requests import Request
from strawberry.types import ExecutionResult

from aipasta.settings import Settings
from providers.chat import ChatDelta, TokenUsage
from providers.fake import FakeProvider, ScriptedSource
from providers.model import ModelInfo, Pricing
from resolvers.catalog.service import Catalog
from resolvers.catalog.store import CatalogStore
from resolvers.context import Context, Services
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import Identity
from resolvers.identity.key_store import ApiKeyStore
from resolvers.usage.recorder import UsageRecorder
from schema.build import build_schema

MODEL = ModelInfo(
    provider="openrouter",
    upstream_id="mistralai/mistral-7b-instruct",
    name="Mistral 7B",
    context_length=32768,
    pricing=Pricing(Decimal("0.028"), Decimal("0.054"), Decimal("0"), Decimal("0")),
)
TYPENAME = "{ __typename }"
CHAT = """
mutation ($i: ChatInput!) {
  chat(input: $i) {
    id model provider finishReason latencyMs messageId
    message { role content }
    usage { promptTokens completionTokens totalTokens estimated }
    cost { inputCost outputCost totalCost known }
  }
}
"""
STREAM = """
subscription ($i: ChatInput!) {
  chatStream(input: $i) {
    __typename
    ... on ChatDelta { index content }
    ... on ChatCompleted { content timeToFirstTokenMs }
    ... on ChatFailed { code message }
  }
}
"""
VARIABLES = {
    "i": {
        "model": MODEL.id,
        "messages": [
            {"role": "SYSTEM", "content": "You are terse."},
            {"role": "USER", "content": "Hi there"},
        ],
    }
}


class Bench:
    def __init__(self, services: Services, provider: FakeProvider) -> None:
        self.schema = build_schema(services.settings)
        self.services = services
        self.provider = provider

    def context(self, *, over_sse: bool = False) -> Context:
        request = Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)})
        return Context(
            services=self.services,
            request=request,
            response=None,
            request_id="req-bench",
            identity=Identity(user_id="bench"),
            over_sse=over_sse,
        )

    async def typename(self) -> None:
        result = await self.schema.execute(TYPENAME, context_value=self.context())
        assert result.errors is None, result.errors

    async def chat(self) -> None:
        self.provider.enqueue("Hel", "lo", _usage())
        result = await self.schema.execute(
            CHAT, variable_values=VARIABLES, context_value=self.context()
        )
        assert result.errors is None, result.errors

    async def stream_first_event(self) -> None:
        self.provider.enqueue("Hel", "lo", _usage())
        results = await self.schema.subscribe(
            STREAM, variable_values=VARIABLES, context_value=self.context(over_sse=True)
        )
        assert not isinstance(results, ExecutionResult), results.errors
        first = await anext(results)
        assert first.errors is None, first.errors
        await results.aclose()


def _usage() -> ChatDelta:
    return ChatDelta(content="", finish_reason="stop", usage=TokenUsage(12, 2, 14, None))


async def per_operation(run: Callable[[], Awaitable[None]], iterations: int, runs: int) -> float:
    """Best of `runs` CPU µs per call of `run`."""
    for _ in range(min(iterations, 50)):  # warm every cache first
        await run()
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        for _ in range(iterations):
            await run()
        best = min(best, (time.process_time() - started) / iterations)
    return best * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    # The operation log line is part of the cost, its output is not (INFO, as deployed).
    logging.getLogger().addHandler(logging.NullHandler())
    logging.getLogger("aipasta").setLevel(logging.INFO)
    logging.getLogger("aipasta").propagate = False
    logging.getLogger("aipasta").addHandler(logging.NullHandler())

    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            _env_file=None,
            AIPASTA_DATA_DIR=data,
            AIPASTA_STREAM_COALESCE_MS=0,
            AIPASTA_CHAT_RETRY_BACKOFF=0,
        )
        provider = FakeProvider("openrouter")
        catalog = Catalog(
            [ScriptedSource("openrouter", [MODEL])],
            store=CatalogStore(None),
            ttl_seconds=1800,
            retry_seconds=60,
        )
        catalog.start()
        keys = ApiKeyStore(None)
        usage = UsageRecorder(None, flush_interval=3600)
        services = Services(
            settings=settings,
            http=None,  # type: ignore[arg-type]
            catalog=catalog,
            database=None,
            keys=keys,
            authenticator=Authenticator(settings, keys),
            version="bench",
            chat={"openrouter": provider},
            usage=usage,
        )
        bench = Bench(services, provider)
        try:
            cases: dict[str, Callable[[], Awaitable[None]]] = {
                "{ __typename }": bench.typename,
                "chat mutation (2 messages)": bench.chat,
                "chatStream to its first event": bench.stream_first_event,
            }
            for name, run in cases.items():
                micros = await per_operation(run, args.iterations, args.runs)
                print(f"{name:34} {micros:8.1f} µs CPU per operation")
            if args.profile:
                await profile(bench, args.iterations, args.profile)
        finally:
            await services.background.drain(within=5)
            await usage.close()
            await catalog.close()


async def profile(bench: Bench, iterations: int, top: int, sort: str = "tottime") -> None:
    profiler = cProfile.Profile()
    for name, run in (("chat", bench.chat), ("chatStream", bench.stream_first_event)):
        profiler.enable()
        for _ in range(iterations):
            await run()
        profiler.disable()
        print(f"\n--- {name}: {iterations} operations ---")
        stats = pstats.Stats(profiler)
        stats.sort_stats(sort).print_stats(top)
        profiler = cProfile.Profile()


if __name__ == "__main__":
    asyncio.run(main())
