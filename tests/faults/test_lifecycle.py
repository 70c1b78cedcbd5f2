"""A thousand websocket connections come and go: the server must not keep anything of
them. The app runs in this process and event loop, so its tasks and memory can be
counted directly."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from typing import Any

from tests.faults.conftest import MISTRAL, MISTRAL_UPSTREAM, FaultApp, FaultAppFactory, user_says
from tests.streaming.conftest import CHAT_STREAM, GraphQLWebSocket, Outcome, wait_until
from tests.support.fake_upstream import FakeUpstream, Stall, Text, answer, steps

CYCLES = 1000
BATCH = 20
WARM_UP = 2 * BATCH  # like CYCLES, a multiple of the four kinds of cycle
# Tasks that may come and go on their own (the usage writer's wake-ups, a database
# reconnect check): a constant, however many connections came before.
TASK_SLACK = 5
# Bounded structures still filling up count as growth: graphql-core's caches, the rate
# limiter's one-minute window (about 0.6 MB in all). A leak of 3 KB a cycle is not.
MEMORY_SLACK = 3 * 1024 * 1024

COMPLETE, ABANDONED, QUERY, DROPPED = range(4)
GPT_MINI = "openrouter:openai/gpt-4o-mini"
GPT_MINI_UPSTREAM = "openai/gpt-4o-mini"


def stream_of(model: str) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says("Hi")}}


async def cycle(app: FaultApp, n: int) -> None:
    """connection_init, one operation, close. By `n % 4`: a chatStream read to its end;
    one left after its first delta while the upstream is still streaming; a query over
    the socket; a chatStream subscribed and dropped at once, racing its start."""
    ws = await GraphQLWebSocket.open(app)
    try:
        kind = n % 4
        if kind == COMPLETE:
            outcome = await ws.run(CHAT_STREAM, stream_of(MISTRAL))
            assert outcome.completed and outcome.errors == [], outcome
            assert outcome.events[-1]["__typename"] == "ChatCompleted", outcome
            assert outcome.events[-1]["content"] == "Hi there"
        elif kind == ABANDONED:
            op = await ws.subscribe(CHAT_STREAM, stream_of(GPT_MINI))
            first = await ws.event(op, Outcome())
            assert first is not None and first["content"] == "Hi", first
        elif kind == QUERY:
            op = await ws.subscribe("query Cheap { __typename }", {})
            result = await ws.message(op)
            assert result["payload"] == {"data": {"__typename": "Query"}}, result
            assert (await ws.message(op))["type"] == "complete"
        else:
            await ws.subscribe(CHAT_STREAM, stream_of(GPT_MINI))
    finally:
        await ws.close()


async def run_cycles(app: FaultApp, start: int, count: int) -> None:
    for batch in range(start, start + count, BATCH):
        await asyncio.gather(*(cycle(app, n) for n in range(batch, batch + BATCH)))


def server_tasks(raw: FakeUpstream) -> set[asyncio.Task[Any]]:
    """Every task of the loop except the fake provider's own connection handlers."""
    return asyncio.all_tasks() - raw.handlers


async def settled(app: FaultApp, raw: FakeUpstream) -> None:
    """Wait (bounded) until the work the cycles left behind is done: abandoned streams'
    bookkeeping, their upstream requests, and the usage records."""

    async def quiet() -> bool:
        stalled = [c for c in raw.chats_for(GPT_MINI_UPSTREAM) if not c.closed_by_client.is_set()]
        return not stalled and app.services.background.running == 0

    await wait_until(quiet, within=15)
    await app.services.usage.flush()


async def test_websocket_cycles_leave_no_tasks_or_memory_behind(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    raw.default(MISTRAL_UPSTREAM, answer("Hi", " there"))
    raw.default(GPT_MINI_UPSTREAM, steps(Text("Hi"), Stall()))
    app = await fault_app(AIPASTA_LOG_LEVEL="ERROR")

    # Warm up: caches, the upstream pool and the database connections fill once.
    await run_cycles(app, 0, WARM_UP)
    await settled(app, raw)
    gc.collect()
    tasks_before = len(server_tasks(raw))
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        await run_cycles(app, WARM_UP, CYCLES)
        await settled(app, raw)

        async def tasks_back() -> bool:
            return len(server_tasks(raw)) <= tasks_before + TASK_SLACK

        await wait_until(tasks_back, within=10)
        tasks_after = server_tasks(raw)

        # Streams read to the end reached the upstream once each; every stream the
        # client left (after a delta, or before it even started upstream) had its
        # upstream request dropped.
        total = WARM_UP + CYCLES
        assert len(raw.chats_for(MISTRAL_UPSTREAM)) == total // 4
        left = raw.chats_for(GPT_MINI_UPSTREAM)
        assert total // 4 <= len(left) <= total // 2
        assert all(c.closed_by_client.is_set() for c in left)
        # The fake's log of requests is the test's memory, not the server's.
        raw.chats.clear()
        del left
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()

    grown = after.compare_to(before, "lineno")
    growth = sum(stat.size_diff for stat in grown)
    top = "\n".join(str(stat) for stat in grown[:10])
    assert growth < MEMORY_SLACK, f"{growth} bytes kept after {CYCLES} cycles:\n{top}"
    assert len(tasks_after) <= tasks_before + TASK_SLACK, tasks_after
