"""Bounded load on loopback: closed-loop workers, percentiles, and the two clients the
streaming scenarios need (graphql-transport-ws to the gateway, SSE straight to the
simulator)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

WS_PROTOCOL = "graphql-transport-ws"


def percentile(values: list[float], q: float) -> float | None:
    """The `q` quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Load:
    """What a closed-loop run did: one latency per success, failures by reason."""

    latencies: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


async def closed_loop(
    call: Callable[[], Awaitable[str | None]], *, concurrency: int, count: int, seconds: float
) -> Load:
    """`concurrency` workers call `call` back to back until `count` calls were started
    or `seconds` passed. `call` returns None on success, else a failure reason."""
    load = Load()
    started = itertools.count()
    begin = time.perf_counter()
    deadline = begin + seconds

    async def worker() -> None:
        while next(started) < count and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                failure = await call()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failure = type(exc).__name__
            if failure is None:
                load.latencies.append(time.perf_counter() - t0)
            else:
                load.failures[failure] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.elapsed = time.perf_counter() - begin
    return load


@dataclass
class Stream:
    """One stream as its client saw it: times in seconds from the request."""

    first_token: float | None = None
    gaps: list[float] = field(default_factory=list)
    tokens: int = 0
    failure: str | None = None
    total: float = 0.0


@dataclass
class Streams:
    streams: list[Stream] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def completed(self) -> list[Stream]:
        return [s for s in self.streams if s.failure is None]

    @property
    def failures(self) -> Counter[str]:
        return Counter(s.failure for s in self.streams if s.failure is not None)

    @property
    def rate(self) -> float:
        return len(self.completed) / self.elapsed if self.elapsed else 0.0

    @property
    def tokens(self) -> int:
        return sum(s.tokens for s in self.completed)

    def first_tokens(self) -> list[float]:
        return [s.first_token for s in self.completed if s.first_token is not None]

    def gaps(self) -> list[float]:
        return [gap for s in self.completed for gap in s.gaps]


class _Timeline:
    def __init__(self) -> None:
        self.stream = Stream()
        self.start = time.perf_counter()
        self._last: float | None = None

    def token_event(self, tokens: int) -> None:
        now = time.perf_counter()
        if self._last is None:
            self.stream.first_token = now - self.start
        else:
            self.stream.gaps.append(now - self._last)
        self._last = now
        self.stream.tokens += tokens

    def end(self, failure: str | None) -> Stream:
        self.stream.failure = failure
        self.stream.total = time.perf_counter() - self.start
        return self.stream


async def sse_stream(http: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> Stream:
    """POST a streaming chat completion and time its content chunks."""
    timeline = _Timeline()
    async with http.post(url, json={**payload, "stream": True}) as response:
        if response.status != 200:
            return timeline.end(f"HTTP {response.status}")
        async for line in response.content:
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    timeline.token_event(1)
    return timeline.end(None)


class GraphQLWS:
    """graphql-transport-ws over one aiohttp websocket, many operations at once."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, url: str) -> GraphQLWS:
        ws = await http.ws_connect(url, protocols=(WS_PROTOCOL,), max_msg_size=0)
        client = cls(ws)
        await ws.send_json({"type": "connection_init", "payload": {}})
        ack = await ws.receive_json(timeout=10)
        if ack.get("type") != "connection_ack":
            raise ValueError(f"no connection_ack: {ack}")
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(message.data)
            queue = self._queues.get(data.get("id", ""))
            if queue is not None:
                queue.put_nowait(data)
        for queue in self._queues.values():
            queue.put_nowait({"type": "closed"})

    async def stream(self, query: str, variables: dict[str, Any], within: float) -> Stream:
        """Subscribe and time the content of each `next` until the server ends it."""
        op_id = str(next(self._ids))
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[op_id] = queue
        timeline = _Timeline()
        failure: str | None = "no ChatCompleted"
        try:
            await self.ws.send_json(
                {
                    "id": op_id,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables},
                }
            )
            async with asyncio.timeout(within):
                while True:
                    message = await queue.get()
                    kind = message["type"]
                    if kind != "next":
                        if kind != "complete":
                            failure = f"ws {kind}"
                        break
                    payload = message["payload"]
                    if payload.get("errors"):
                        failure = str(payload["errors"][0].get("extensions", {}).get("code"))
                        continue
                    event = next(iter((payload.get("data") or {}).values()), None) or {}
                    typename = event.get("__typename")
                    if typename == "ChatDelta" and event.get("content"):
                        timeline.token_event(0)
                    elif typename == "ChatCompleted":
                        timeline.stream.tokens = event["usage"]["completionTokens"]
                        failure = None
                    elif typename == "ChatFailed":
                        failure = event.get("code") or "ChatFailed"
        except TimeoutError:
            failure = "client timeout"
        finally:
            del self._queues[op_id]
        return timeline.end(failure)

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader
