"""Slow and vanished clients: a client that stops reading, or leaves, costs the gateway
neither memory nor an upstream request, and nothing it was owed is lost.

- A websocket client that stops reading a stream but keeps its connection open: the
  gateway reads only a bounded amount ahead of it (`AIPASTA_STREAM_BUFFER_BYTES`), then
  gives up on it after `AIPASTA_STREAM_SEND_TIMEOUT`; the stream ends as on a disconnect.
- An HTTP `chat` / `compare` whose client disconnects is cancelled at once: upstream
  closed, the partial answer saved, usage recorded.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import pytest_asyncio
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Event
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from tests.streaming.conftest import (
    CHAT,
    CHAT_STREAM,
    COMPARE,
    COMPARE_STREAM,
    GPT_MINI,
    GPT_MINI_UPSTREAM,
    HISTORY,
    MISTRAL,
    MISTRAL_UPSTREAM,
    WS_PROTOCOL,
    GraphQLWebSocket,
    StreamApp,
    saved_answer,
    usage_records,
    user_says,
    wait_until,
)
from tests.support.fake_upstream import FakeUpstream, Finish, Reached, Stall, Text, answer, steps
from tests.support.server import RunningApp, slow_reader_connection

MiB = 1024 * 1024
# 40 MiB of answer in 4 KiB pieces: the gateway must never hold more than a sliver of it.
PIECE = "0123456789abcdef" * 256
ANSWER_PIECES = 40 * MiB // len(PIECE)
SEND_TIMEOUT = 0.5

WsClient = Any


def _status_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, field
    return int(match.group(1))


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets VmHWM (the peak RSS) to the current RSS.
    Path("/proc/self/clear_refs").write_text("5")


class NonReadingClient:
    """graphql-transport-ws over a socket with a tiny receive buffer: after `subscribe`
    it reads nothing more, yet keeps the connection open (as a stalled browser tab or a
    hostile client would). `read_rest` later reads whatever the server still sends."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: ClientProtocol
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = ws

    @classmethod
    async def open(cls, app: RunningApp) -> Self:
        url = urlsplit(app.base_url)
        reader, writer = await slow_reader_connection(app)
        ws = ClientProtocol(
            parse_uri(f"ws://{url.hostname}:{url.port}/graphql"),
            subprotocols=[Subprotocol(WS_PROTOCOL)],
            max_size=None,
        )
        client = cls(reader, writer, ws)
        ws.send_request(ws.connect())
        await client._flush()
        (response,) = await client._events(1)
        assert isinstance(response, Response) and response.status_code == 101, response
        await client.send({"type": "connection_init", "payload": {}})
        (ack,) = await client._events(1)
        assert isinstance(ack, Frame) and json.loads(bytes(ack.data)) == {"type": "connection_ack"}
        return client

    async def send(self, message: dict[str, Any]) -> None:
        self.ws.send_text(json.dumps(message).encode())
        await self._flush()

    async def read_rest(self) -> list[dict[str, Any]]:
        """Read until the server closes the connection: the messages it had sent."""
        messages = []
        async with asyncio.timeout(10):
            while data := await self.reader.read(65536):
                self.ws.receive_data(data)
                messages += [
                    json.loads(bytes(e.data))
                    for e in self.ws.events_received()
                    if isinstance(e, Frame) and e.opcode is Opcode.TEXT
                ]
        self.ws.receive_eof()
        return messages

    async def _flush(self) -> None:
        self.writer.write(b"".join(self.ws.data_to_send()))
        await self.writer.drain()

    async def _events(self, count: int) -> list[Event]:
        events: list[Event] = []
        async with asyncio.timeout(5):
            while len(events) < count:
                data = await self.reader.read(4096)
                assert data, "the server closed the connection"
                self.ws.receive_data(data)
                events += self.ws.events_received()
        return events


@pytest_asyncio.fixture
async def non_reading() -> AsyncIterator[Callable[[RunningApp], Awaitable[NonReadingClient]]]:
    """Opens non-reading clients, closed after the test: the server's shutdown waits
    for a connection whose unread bytes it still holds."""
    opened: list[NonReadingClient] = []

    async def open_client(app: RunningApp) -> NonReadingClient:
        client = await NonReadingClient.open(app)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.writer.transport.abort()


def _chat_input(model: str = MISTRAL, **extra: Any) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says("Write a lot"), **extra}}


async def test_a_client_that_stops_reading_pauses_the_upstream_and_is_let_go(
    sse: FakeUpstream,
    stream_app: StreamApp,
    ws_client: WsClient,
    non_reading: Callable[[RunningApp], Awaitable[NonReadingClient]],
    store: Any,
) -> None:
    sse.script(
        MISTRAL_UPSTREAM,
        answer("Warm-up"),
        steps(*[Text(PIECE)] * ANSWER_PIECES, Finish(10, 10_000_000)),
        answer("Again"),
    )
    app = await stream_app(AIPASTA_STREAM_SEND_TIMEOUT=SEND_TIMEOUT, AIPASTA_MAX_STREAMS_PER_USER=1)
    # One ordinary stream first: what the first stream costs once (imports, caches) is
    # not what this test measures.
    ws: GraphQLWebSocket = await ws_client(app)
    warm_up = await ws.run(CHAT_STREAM, _chat_input())
    assert warm_up.completed
    client = await non_reading(app)
    _reset_peak_rss()
    rss_before = _status_kib("VmRSS")

    await client.send(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": CHAT_STREAM, "variables": _chat_input(sessionId="s-stalled")},
        }
    )

    # The gateway stopped reading the answer once its buffers were full, and let the
    # client go after the send timeout: the upstream request is closed, unfinished.
    upstream = await sse.chat(1)
    await upstream.wait_closed(within=10)
    assert not upstream.finished
    grown_kib = _status_kib("VmHWM") - rss_before
    # Whole process (gateway, fake upstream and clients run in this one): peak RSS grew
    # by less than 10 MB for a 40 MiB answer (it grew by the whole answer and more before).
    assert grown_kib < 10_000, f"peak RSS grew by {grown_kib} KiB"

    # What was generated is kept, as on a disconnect: a PARTIAL answer, and usage.
    _, reply = await saved_answer(app, "s-stalled")
    assert reply["status"] == "PARTIAL"
    kept = reply["content"]
    assert 0 < len(kept) < 10 * MiB
    assert kept == PIECE * (len(kept) // len(PIECE))
    _, record = await usage_records(store, count=2)
    assert record["status"] == "cancelled"
    assert record["completionTokens"] > 0

    # The stream slot was given back: with one stream allowed, the next one runs.
    again = await ws.run(CHAT_STREAM, _chat_input())
    assert again.completed and again.errors == []
    assert again.events[-1]["content"] == "Again"

    # The stalled client, reading again, finds its stream cut short (no terminal event,
    # no `complete`) and then the connection closed by the server.
    late = await client.read_rest()
    assert all(m["type"] == "next" for m in late), [m["type"] for m in late if m["type"] != "next"]
    assert {m["payload"]["data"]["chatStream"]["__typename"] for m in late} <= {"ChatDelta"}
    assert client.ws.close_code == 1006  # no close frame: none could reach it in time


async def test_a_comparison_whose_client_stops_reading_pauses_every_upstream(
    sse: FakeUpstream,
    stream_app: StreamApp,
    ws_client: WsClient,
    non_reading: Callable[[RunningApp], Awaitable[NonReadingClient]],
    store: Any,
) -> None:
    half = steps(*[Text(PIECE)] * (ANSWER_PIECES // 2), Finish(10, 5_000_000))
    sse.script(MISTRAL_UPSTREAM, answer("Warm-up"), half)
    sse.script(GPT_MINI_UPSTREAM, half)
    app = await stream_app(AIPASTA_STREAM_SEND_TIMEOUT=SEND_TIMEOUT)
    ws: GraphQLWebSocket = await ws_client(app)
    assert (await ws.run(CHAT_STREAM, _chat_input())).completed  # warm-up, as above
    client = await non_reading(app)
    _reset_peak_rss()
    rss_before = _status_kib("VmRSS")

    variables = {
        "input": {"models": [MISTRAL, GPT_MINI], "messages": user_says("Two"), "sessionId": "s2"}
    }
    await client.send(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": COMPARE_STREAM, "variables": variables},
        }
    )

    for call in (await sse.chat(1), await sse.chat(2)):
        await call.wait_closed(within=10)
        assert not call.finished
    grown_kib = _status_kib("VmHWM") - rss_before
    assert grown_kib < 10_000, f"peak RSS grew by {grown_kib} KiB"
    answers = await _answers(app, "s2", 2)
    assert {a["model"] for a in answers} == {MISTRAL, GPT_MINI}
    assert {a["status"] for a in answers} == {"PARTIAL"}
    records = await usage_records(store, count=3)
    assert [r["status"] for r in records[1:]] == ["cancelled", "cancelled"]


async def _answers(app: RunningApp, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's saved answers, once there are `count` of them."""

    async def probe() -> list[dict[str, Any]] | None:
        body = await app.graphql(HISTORY, {"sessionId": session_id})
        nodes = (body.get("data") or {}).get("chatHistory") or {"nodes": []}
        answers = [n for n in nodes["nodes"] if not n["isUser"]]
        return answers if len(answers) == count else None

    return await wait_until(probe)


async def _post_then_leave(app: RunningApp, query: str, variables: dict[str, Any]) -> Any:
    """Send the operation over a raw connection; returns the writer, to close it with."""
    url = urlsplit(app.base_url)
    assert url.hostname is not None and url.port is not None
    _, writer = await asyncio.open_connection(url.hostname, url.port)
    body = json.dumps({"query": query, "variables": variables}).encode()
    writer.write(
        b"POST /graphql HTTP/1.1\r\n"
        + f"Host: {url.netloc}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return writer


def _partial_then_stall(text: str, mark: asyncio.Event) -> Any:
    return steps(Text(text), Reached(mark), Stall())


async def test_a_chat_mutation_whose_client_leaves_closes_the_upstream_and_keeps_the_partial(
    sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    written = asyncio.Event()
    sse.script(MISTRAL_UPSTREAM, _partial_then_stall("Partial answer", written))
    app = await stream_app()
    writer = await _post_then_leave(app, CHAT, _chat_input(sessionId="s-left"))
    upstream = await sse.chat(0)
    await asyncio.wait_for(written.wait(), 5)

    writer.close()

    await upstream.wait_closed(within=1.0)
    question, reply = await saved_answer(app, "s-left")
    assert question["isUser"] is True
    assert (reply["status"], reply["content"]) == ("PARTIAL", "Partial answer")
    (record,) = await usage_records(store)
    assert record["status"] == "cancelled"
    assert record["estimated"] is True and record["completionTokens"] > 0


async def test_a_compare_mutation_whose_client_leaves_closes_every_upstream(
    sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    marks = {MISTRAL_UPSTREAM: asyncio.Event(), GPT_MINI_UPSTREAM: asyncio.Event()}
    for model, mark in marks.items():
        sse.script(model, _partial_then_stall(f"From {model}", mark))
    app = await stream_app()
    variables = {
        "input": {
            "models": [MISTRAL, GPT_MINI],
            "messages": user_says("Compare"),
            "sessionId": "s-both",
        }
    }
    writer = await _post_then_leave(app, COMPARE, variables)
    for mark in marks.values():
        await asyncio.wait_for(mark.wait(), 5)

    writer.close()

    for model in marks:
        (call,) = sse.chats_for(model)
        await call.wait_closed(within=1.0)

    answers = await _answers(app, "s-both", 2)
    assert {(a["model"], a["status"], a["content"]) for a in answers} == {
        (MISTRAL, "PARTIAL", f"From {MISTRAL_UPSTREAM}"),
        (GPT_MINI, "PARTIAL", f"From {GPT_MINI_UPSTREAM}"),
    }
    records = await usage_records(store, count=2)
    assert [r["status"] for r in records] == ["cancelled", "cancelled"]
