"""The real app under uvicorn, a scripted SSE provider, and a graphql-transport-ws client.

`stream_app(**env)` starts the gateway with both providers' base URLs pointing at the
`sse` fake upstream, retry back-off 0 and stream coalescing off (one delta per upstream chunk)
unless a test overrides them. `GraphQLWebSocket` speaks graphql-transport-ws over a real
websocket; `wait_until` polls a condition with a bounded wait (the usage recorder and a
cancelled stream's bookkeeping finish in the background).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import aiohttp
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

WS_PROTOCOL = "graphql-transport-ws"
RECEIVE_TIMEOUT = 10.0

MISTRAL = "openrouter:mistralai/mistral-7b-instruct"
MISTRAL_UPSTREAM = "mistralai/mistral-7b-instruct"
GPT_MINI = "openrouter:openai/gpt-4o-mini"
GPT_MINI_UPSTREAM = "openai/gpt-4o-mini"
LLAMA_HF = "huggingface:meta-llama/Llama-3.1-8B-Instruct"
LLAMA_HF_UPSTREAM = "meta-llama/Llama-3.1-8B-Instruct"

_EVENT_FIELDS = """
    __typename
    ... on ChatDelta { model content index }
    ... on ChatCompleted {
      model provider finishReason content
      usage { promptTokens completionTokens totalTokens estimated }
      cost { inputCost outputCost totalCost known }
      latencyMs timeToFirstTokenMs messageId
    }
    ... on ChatFailed { model code message retryable partialContent messageId }
"""
CHAT_STREAM = f"""
subscription ChatStream($input: ChatInput!) {{
  chatStream(input: $input) {{ {_EVENT_FIELDS} }}
}}
"""
COMPARE_STREAM = f"""
subscription CompareStream($input: CompareInput!) {{
  compareStream(input: $input) {{ {_EVENT_FIELDS} }}
}}
"""
_RESULT_FIELDS = """
    id model provider finishReason latencyMs messageId
    message { role content }
    usage { promptTokens completionTokens totalTokens estimated }
    cost { inputCost outputCost totalCost known }
"""
CHAT = f"""
mutation Chat($input: ChatInput!) {{ chat(input: $input) {{ {_RESULT_FIELDS} }} }}
"""
COMPARE = f"""
mutation Compare($input: CompareInput!) {{
  compare(input: $input) {{
    model
    result {{ {_RESULT_FIELDS} }}
    error {{ code message retryable }}
  }}
}}
"""
HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) {
    nodes { id sessionId content isUser role model cost modelCount status }
  }
}
"""
USAGE = "{ usage { totalRequests totalCost rows { key requests failedRequests } } }"

T = TypeVar("T")


def user_says(content: str) -> list[dict[str, Any]]:
    return [{"role": "USER", "content": content}]


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 5.0, every: float = 0.05
) -> T:
    """Poll `probe` until it returns something other than None (or falsy); bounded."""
    async with asyncio.timeout(within):
        while True:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(every)


@dataclass
class Outcome:
    """What one subscription delivered: `events` (the field's value of each `next`),
    GraphQL `errors`, and whether the server ended it with `complete`."""

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    completed: bool = False
    # The server ended the operation with an `error` message (no `complete` follows).
    rejected: bool = False

    @property
    def ended(self) -> bool:
        return self.completed or self.rejected

    def take(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Read one `next` payload: its errors, and the field value it carried, if any."""
        self.errors.extend(payload.get("errors") or [])
        data = payload.get("data")
        if not data:
            return None
        (value,) = data.values()
        self.events.append(value)
        return value  # type: ignore[no-any-return]

    @property
    def deltas(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["__typename"] == "ChatDelta"]

    @property
    def terminals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["__typename"] != "ChatDelta"]


class GraphQLWebSocket:
    """A minimal graphql-transport-ws client over aiohttp."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        # Messages read while waiting for another operation's, kept for their reader.
        self._pending: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, app: RunningApp) -> Self:
        ws = await app.http.ws_connect(f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,))
        client = cls(ws)
        await ws.send_json({"type": "connection_init", "payload": {}})
        ack = await client._read()
        assert ack == {"type": "connection_ack"}, ack
        return client

    async def subscribe(self, query: str, variables: dict[str, Any]) -> str:
        op_id = str(next(self._ids))
        await self.ws.send_json(
            {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}
        )
        return op_id

    async def message(self, op_id: str) -> dict[str, Any]:
        """The next server message for `op_id`."""
        for i, waiting in enumerate(self._pending):
            if waiting.get("id") == op_id:
                return self._pending.pop(i)
        while True:
            received = await self._read()
            if received.get("id") == op_id:
                return received
            self._pending.append(received)

    async def event(self, op_id: str, outcome: Outcome) -> dict[str, Any] | None:
        """Read one message for `op_id` into `outcome`; the event it carried, if any."""
        received = await self.message(op_id)
        kind = received["type"]
        if kind == "complete":
            outcome.completed = True
            return None
        if kind == "error":
            outcome.errors.extend(received["payload"])
            outcome.rejected = True
            return None
        assert kind == "next", received
        return outcome.take(received["payload"])

    async def finish(self, op_id: str, outcome: Outcome | None = None) -> Outcome:
        """Read `op_id`'s messages until the server ends it (`complete` or `error`)."""
        outcome = outcome or Outcome()
        while not outcome.ended:
            await self.event(op_id, outcome)
        return outcome

    async def run(self, query: str, variables: dict[str, Any]) -> Outcome:
        return await self.finish(await self.subscribe(query, variables))

    async def complete(self, op_id: str) -> None:
        await self.ws.send_json({"id": op_id, "type": "complete"})

    async def close(self) -> None:
        await self.ws.close()

    def unread(self, op_id: str) -> list[dict[str, Any]]:
        """Messages for `op_id` that arrived while the test read another operation's."""
        return [m for m in self._pending if m.get("id") == op_id]

    async def _read(self) -> dict[str, Any]:
        while True:
            message = await self.ws.receive(timeout=RECEIVE_TIMEOUT)
            assert message.type == aiohttp.WSMsgType.TEXT, (message, self.ws.close_code)
            received: dict[str, Any] = message.json()
            if received.get("type") == "ping":
                await self.ws.send_json({"type": "pong"})
                continue
            return received


@pytest.fixture
def sse(catalog_upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream serving both catalogs; chats answer what the test scripts."""
    return catalog_upstream


StreamApp = Callable[..., Awaitable[RunningApp]]


@pytest.fixture
def stream_app(sse: FakeUpstream, start_app: StartApp) -> StreamApp:
    async def start(**overrides: Any) -> RunningApp:
        settings: dict[str, Any] = {
            "OPENROUTER_BASE_URL": sse.url("openrouter"),
            "HUGGINGFACE_BASE_URL": sse.url("hf"),
            "AIPASTA_CHAT_RETRY_BACKOFF": 0,
            "AIPASTA_STREAM_COALESCE_MS": 0,
        }
        settings.update(overrides)
        return await start_app(**settings)

    return start


@pytest_asyncio.fixture
async def ws_client() -> AsyncIterator[Callable[[RunningApp], Awaitable[GraphQLWebSocket]]]:
    """Opens graphql-transport-ws connections, closed after the test."""
    opened: list[GraphQLWebSocket] = []

    async def open_ws(app: RunningApp) -> GraphQLWebSocket:
        client = await GraphQLWebSocket.open(app)
        opened.append(client)
        return client

    yield open_ws
    for client in opened:
        await client.close()


@pytest_asyncio.fixture
async def store(mongo_uri: str, clean_db: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """The app's database, read directly (usage records are not in any API field)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        yield client[clean_db]
    finally:
        await client.close()


async def usage_records(
    store: AsyncDatabase[dict[str, Any]], count: int = 1, within: float = 5.0
) -> list[dict[str, Any]]:
    """The usage records, once at least `count` were written (the recorder flushes every
    second)."""

    async def probe() -> list[dict[str, Any]] | None:
        records = await store["usage_records"].find().sort("createdAt", 1).to_list()
        return records if len(records) >= count else None

    return await wait_until(probe, within=within)


async def history(app: RunningApp, session_id: str) -> list[dict[str, Any]]:
    body = await app.graphql(HISTORY, {"sessionId": session_id})
    assert "errors" not in body, body
    nodes: list[dict[str, Any]] = body["data"]["chatHistory"]["nodes"]
    return nodes


async def saved_answer(
    app: RunningApp, session_id: str, within: float = 5.0
) -> list[dict[str, Any]]:
    """The session's messages once an answer is among them (saved in the background
    when the client went away)."""

    async def probe() -> list[dict[str, Any]] | None:
        body = await app.graphql(HISTORY, {"sessionId": session_id})
        if body.get("errors"):
            # The session is created by the same background save.
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", body
            return None
        nodes: list[dict[str, Any]] = body["data"]["chatHistory"]["nodes"]
        return nodes if any(not n["isUser"] for n in nodes) else None

    return await wait_until(probe, within=within)
