"""A fake OpenAI-compatible provider written on raw asyncio streams.

aiohttp's server would tidy up exactly the faults these tests need, so this one speaks
just enough HTTP/1.1 by hand: it can keep a request waiting without sending a status
line, stop sending in the middle of a chunked body, reset the TCP connection (RST),
or send bytes that are not server-sent events. It sees each connection open and
close, so a test can tell that the gateway really let go of it.

`GET /<provider>/models` serves the catalog fixtures (with `Connection: close`, so the
only connections that stay open are chat requests), or, for a provider named in
`hanging_catalogs`, accepts the request and never answers. `POST /<provider>/chat/completions`
plays a `Script` chosen by the request's `model`: queued ones first, then the model's
default. Chat answers use chunked encoding, so a completed answer leaves its
connection reusable, as a real provider's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from tests.support.upstream import fixture_json

CATALOGS = {"openrouter": "openrouter_models.json", "hf": "huggingface_models.json"}


@dataclass(frozen=True)
class Text:
    """One SSE chunk carrying a piece of the answer."""

    content: str


@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are, inside the (chunked) body."""

    data: bytes


@dataclass(frozen=True)
class Finish:
    """The finish-reason chunk, a usage chunk, then `[DONE]` and the end of the body."""

    prompt_tokens: int = 10
    completion_tokens: int = 5


@dataclass(frozen=True)
class Wait:
    """Send nothing more until the test sets `gate`."""

    gate: asyncio.Event


@dataclass(frozen=True)
class Stall:
    """Send nothing more, ever; return when the client closes the connection."""


@dataclass(frozen=True)
class Reset:
    """Abort the TCP connection: the client gets a RST, not an orderly end."""


@dataclass(frozen=True)
class End:
    """End the chunked body here, without `[DONE]`."""


Step = Text | Raw | Finish | Wait | Stall | Reset | End


@dataclass(frozen=True)
class Script:
    """One answer. `status` other than 200 answers `body` as JSON at once. With
    `headers=False` not even the status line is sent: the request just hangs."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    body: Any = None
    headers: bool = True


def answer(*pieces: str) -> Script:
    return Script((*(Text(p) for p in pieces), Finish()))


def steps(*script: Step) -> Script:
    return Script(tuple(script))


def hang() -> Script:
    return Script((Stall(),), headers=False)


def http_error(status: int, message: str) -> Script:
    return Script(status=status, body={"error": {"code": status, "message": message}})


@dataclass
class ChatCall:
    """One chat request as the fake saw it."""

    provider: str
    model: str
    body: dict[str, Any]
    # Set when the client closed (or reset) this request's connection before the
    # script ended it.
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False

    async def wait_closed(self, within: float) -> None:
        async with asyncio.timeout(within):
            await self.closed_by_client.wait()


class _ClientGone(Exception):
    pass


class _Aborted(Exception):
    pass


class RawUpstream:
    def __init__(self) -> None:
        self.calls: list[ChatCall] = []
        self.catalog_calls: dict[str, int] = defaultdict(int)
        self.hanging_catalogs: set[str] = set()
        self.open_connections = 0
        self._queued: dict[str, deque[Script]] = defaultdict(deque)
        self._defaults: dict[str, Script] = {}
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self.handlers):
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.port}/{provider}"

    def script(self, model: str, *scripts: Script) -> None:
        self._queued[model].extend(scripts)

    def default(self, model: str, script: Script) -> None:
        self._defaults[model] = script

    def calls_for(self, model: str) -> list[ChatCall]:
        return [call for call in self.calls if call.model == model]

    async def wait_for_connections(self, count: int, within: float = 5.0) -> None:
        """Until exactly `count` client connections are open (bounded)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.open_connections == count)

    async def wait_for_calls(self, count: int, within: float = 5.0) -> None:
        """Until at least `count` chat requests arrived (bounded)."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.calls) >= count)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.open_connections += 1
        await self._notify()
        try:
            while await self._request(reader, writer):
                pass
        except (_ClientGone, _Aborted, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self.open_connections -= 1
            self.handlers.discard(task)
            await self._notify()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is over."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 2 and parts[1] == "models":
            self.catalog_calls[parts[0]] += 1
            if parts[0] in self.hanging_catalogs:
                await _until_client_closes(reader)
            await _send_json(writer, 200, fixture_json(CATALOGS[parts[0]]), close=True)
            return False
        if method == "POST" and parts[1:] == ["chat", "completions"]:
            return await self._chat(parts[0], json.loads(body), reader, writer)
        await _send_json(writer, 404, {"error": {"message": "no such route"}}, close=True)
        return False

    async def _chat(
        self,
        provider: str,
        body: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        call = ChatCall(provider, str(body.get("model")), body)
        self.calls.append(call)
        await self._notify()
        queue = self._queued.get(call.model)
        script = queue.popleft() if queue else self._defaults.get(call.model)
        if script is None:
            script = http_error(404, f"no script for model {call.model}")
        try:
            if script.status != 200:
                await _send_json(writer, script.status, script.body, close=False)
                call.finished = True
                return True
            if script.headers:
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                await writer.drain()
            for step in script.steps:
                await _play(step, call, reader, writer)
        except (_ClientGone, ConnectionError):
            call.closed_by_client.set()
            raise
        call.finished = True
        return True


async def _send_json(writer: asyncio.StreamWriter, status: int, body: Any, *, close: bool) -> None:
    data = json.dumps(body).encode()
    head = [
        f"HTTP/1.1 {status} X",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
    ]
    if close:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
    await writer.drain()


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


def _event(call: ChatCall, **fields: Any) -> bytes:
    payload = {"id": f"gen-{id(call)}", "object": "chat.completion.chunk", "model": call.model}
    payload.update(fields)
    return f"data: {json.dumps(payload)}\n\n".encode()


async def _until_client_closes(reader: asyncio.StreamReader) -> None:
    while await reader.read(1024):
        pass  # a well-behaved client sends nothing more; anything is ignored
    raise _ClientGone


async def _play(
    step: Step, call: ChatCall, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    if isinstance(step, Text):
        choice = {"index": 0, "delta": {"content": step.content}, "finish_reason": None}
        await _chunk(writer, _event(call, choices=[choice]))
    elif isinstance(step, Raw):
        await _chunk(writer, step.data)
    elif isinstance(step, Finish):
        choice = {"index": 0, "delta": {}, "finish_reason": "stop"}
        usage = {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        }
        await _chunk(
            writer,
            _event(call, choices=[choice])
            + _event(call, choices=[], usage=usage)
            + b"data: [DONE]\n\n",
        )
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    elif isinstance(step, Wait):
        await step.gate.wait()
    elif isinstance(step, Stall):
        await _until_client_closes(reader)
    elif isinstance(step, Reset):
        sock = writer.get_extra_info("socket")
        # Linger on, timeout 0: close() sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        raise _Aborted
    else:
        writer.write(b"0\r\n\r\n")
        await writer.drain()
