"""The one fake upstream server: real HTTP on loopback, scripted answers, counted calls.

Every HTTP-level test talks to this server (the in-process double is `providers.fake`).
A request is answered by the first of:

- for `POST .../chat/completions`, a script queued for the request's `model` (its
  upstream id), then that model's default (`script`, `default`);
- a reply queued for the request's path, then that path's default (`enqueue`, `set`);
- a 404.

An answer is a `Reply` (a whole body, any status, sent at once) or a `Stream` (an SSE
answer played step by step: text chunks, raw bytes, waits on the test's events, a
stall, a TCP reset, the end of the body without `[DONE]`). `serve_catalogs()` answers
both providers' `/models` with the fixtures. Every chat request is kept as a `ChatCall`,
which notices when the client dropped its connection before the answer ended; the server
counts open connections, so a test can tell the gateway really let go of them.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

FIXTURES = Path(__file__).parent.parent / "fixtures"
CATALOGS = {"/openrouter/models": "openrouter_models.json", "/hf/models": "huggingface_models.json"}
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# --- answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A whole answer: `body` as JSON (or `raw` bytes), once `gate` (if any) is set.
    A gate nobody sets keeps the request waiting without even a status line. `close`
    asks the client not to reuse the connection."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Event | None = None
    close: bool = False


@dataclass(frozen=True)
class Text:
    """One SSE chunk carrying a piece of the answer."""

    content: str


@dataclass(frozen=True)
class Raw:
    """Bytes sent as they are, as one piece of the (chunked) body."""

    data: bytes


@dataclass(frozen=True)
class Finish:
    """The finish-reason chunk, then a usage chunk (OpenAI's `include_usage` shape)."""

    prompt_tokens: int = 10
    completion_tokens: int = 5
    cost: float | None = None
    reason: str = "stop"


@dataclass(frozen=True)
class StreamError:
    """An in-stream error chunk, as OpenRouter sends when a provider fails mid-answer."""

    code: int
    message: str


@dataclass(frozen=True)
class Wait:
    """Send nothing more until the test sets `gate`."""

    gate: asyncio.Event


@dataclass(frozen=True)
class Reached:
    """Set `mark`: everything before it has been written to the client's connection."""

    mark: asyncio.Event


@dataclass(frozen=True)
class Sleep:
    """A pause inside the answer, for tests of a client's real timeouts (the fake's
    timing, never the test's)."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Send nothing more, ever; the answer ends when the client closes the connection."""


@dataclass(frozen=True)
class Reset:
    """Abort the TCP connection: the client gets a RST, not an orderly end."""


@dataclass(frozen=True)
class End:
    """End the body here, without `[DONE]`."""


Step = Text | Raw | Finish | StreamError | Wait | Reached | Sleep | Stall | Reset | End


@dataclass(frozen=True)
class Stream:
    """An SSE answer: status 200, the `steps`, then (if `done`) `[DONE]` and the end of
    the body. `headers` are sent besides the SSE ones (OpenRouter's `X-Generation-Id`)."""

    steps: tuple[Step, ...] = ()
    done: bool = True
    headers: dict[str, str] = field(default_factory=dict)


Answer = Reply | Stream


def answer(
    *pieces: str, prompt_tokens: int = 10, completion_tokens: int = 5, cost: float | None = None
) -> Stream:
    return Stream(
        (*(Text(piece) for piece in pieces), Finish(prompt_tokens, completion_tokens, cost))
    )


def steps(*script: Step, done: bool = True) -> Stream:
    return Stream(script, done=done)


def http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": status, "message": message}}, headers=headers or {})


def hang() -> Reply:
    """Accept the request and never answer, not even with a status line."""
    return Reply(gate=asyncio.Event())


# --- what the fake saw ----------------------------------------------------------------


@dataclass
class ChatCall:
    """One chat request as the fake saw it."""

    provider: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    peer: object = None
    # Set when the client closed (or reset) this request's connection before the
    # answer ended.
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False

    async def wait_closed(self, within: float) -> None:
        """Return once the client dropped this request's connection; fail after `within`."""
        async with asyncio.timeout(within):
            await self.closed_by_client.wait()


class _Server(web.Server):
    """aiohttp's low-level server, telling the fake when a connection opens or closes."""

    def __init__(self, fake: FakeUpstream, **kwargs: Any) -> None:
        super().__init__(fake._handle, **kwargs)
        self._fake = fake

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self._fake._connection_changed(+1)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._fake._connection_changed(-1)


class FakeUpstream:
    def __init__(self) -> None:
        self.chats: list[ChatCall] = []
        self.calls: dict[str, int] = defaultdict(int)
        self.headers_seen: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.open_connections = 0
        # The tasks serving requests now: the fake's, not the code under test's.
        self.handlers: set[asyncio.Task[Any]] = set()
        self._queued: dict[str, deque[Answer]] = defaultdict(deque)
        self._defaults: dict[str, Answer] = {}
        self._replies: dict[str, deque[Answer]] = defaultdict(deque)
        self._path_defaults: dict[str, Answer] = {}
        self._changed = asyncio.Event()
        self._runner: web.ServerRunner | None = None
        self.port = 0

    async def start(self) -> None:
        # Handlers are cancelled when their client goes away (that is how a `ChatCall`
        # notices); a short shutdown timeout keeps teardown quick.
        server = _Server(self, handler_cancellation=True, access_log=None)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.port}/{prefix.strip('/')}".rstrip("/")

    # --- scripting ---

    def script(self, model: str, *answers: Answer) -> None:
        """Answer the next chat requests for `model` (its upstream id) with `answers`."""
        self._queued[model].extend(answers)

    def default(self, model: str, answer: Answer) -> None:
        """Answer every chat request for `model` that no queued answer is left for."""
        self._defaults[model] = answer

    def enqueue(self, path: str, *answers: Answer) -> None:
        """Answer the next requests for `path` with `answers`, in order."""
        self._replies[path].extend(answers)

    def set(self, path: str, answer: Answer) -> None:
        """Answer every request for `path` that no queued answer is left for."""
        self._path_defaults[path] = answer

    def serve_catalogs(self) -> None:
        """Both providers' model listings from the fixtures, each on a connection of its
        own (so the only connections that stay open are chat requests)."""
        for path, name in CATALOGS.items():
            self.set(path, Reply(body=fixture_json(name), close=True))

    # --- what happened ---

    def chats_for(self, model: str) -> list[ChatCall]:
        return [call for call in self.chats if call.model == model]

    async def chat(self, index: int, within: float = 5.0) -> ChatCall:
        """The `index`-th chat request, waiting (bounded) for it to arrive."""
        await self.wait_for_chats(index + 1, within)
        return self.chats[index]

    async def wait_for_chats(self, count: int, within: float = 5.0) -> None:
        """Until at least `count` chat requests arrived (bounded)."""
        await self._wait(lambda: len(self.chats) >= count, within)

    async def wait_for_calls(self, path: str, count: int, within: float = 5.0) -> None:
        """Until at least `count` requests for `path` arrived (bounded)."""
        await self._wait(lambda: self.calls[path] >= count, within)

    async def wait_for_connections(self, count: int, within: float = 5.0) -> None:
        """Until exactly `count` client connections are open (bounded)."""
        await self._wait(lambda: self.open_connections == count, within)

    async def _wait(self, done: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not done():
                await self._changed.wait()

    def _notify(self) -> None:
        """Wake every `_wait` under way: it checks its condition again."""
        self._changed.set()
        self._changed = asyncio.Event()

    def _connection_changed(self, change: int) -> None:
        self.open_connections += change
        self._notify()

    # --- serving ---

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            return await self._answer(request)
        finally:
            self.handlers.discard(task)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        self.calls[path] += 1
        self.headers_seen[path].append(dict(request.headers))
        call: ChatCall | None = None
        chosen: Answer | None = None
        if request.method == "POST" and path.endswith("/chat/completions"):
            body = await request.json()
            assert request.transport is not None
            call = ChatCall(
                path.strip("/").split("/")[0],
                str(body.get("model")),
                body,
                dict(request.headers),
                request.transport.get_extra_info("peername"),
            )
            self.chats.append(call)
            queue = self._queued.get(call.model)
            chosen = queue.popleft() if queue else self._defaults.get(call.model)
        self._notify()
        if chosen is None:
            replies = self._replies.get(path)
            chosen = replies.popleft() if replies else self._path_defaults.get(path)
        if chosen is None:
            message = "no such route" if call is None else f"no script for model {call.model}"
            chosen = http_error(404, message)
        try:
            response: web.StreamResponse
            if isinstance(chosen, Reply):
                response = await _reply(chosen)
            else:
                response = await _stream(chosen, request, call)
        except (asyncio.CancelledError, ConnectionResetError):
            if call is not None:
                call.closed_by_client.set()
            raise
        if call is not None:
            call.finished = True
        return response


async def _reply(reply: Reply) -> web.Response:
    if reply.gate is not None:
        await reply.gate.wait()
    body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
    response = web.Response(
        status=reply.status,
        body=body,
        headers={"Content-Type": "application/json", **reply.headers},
    )
    if reply.close:
        response.force_close()
    return response


async def _stream(
    stream: Stream, request: web.BaseRequest, call: ChatCall | None
) -> web.StreamResponse:
    response = web.StreamResponse(headers={**SSE_HEADERS, **stream.headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    source = f"gen-{id(call)}", "" if call is None else call.model
    for step in stream.steps:
        if isinstance(step, End):
            await response.write_eof()
            return response
        await _play(step, response, request, source)
    if stream.done:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def _event(source: tuple[str, str], **fields: Any) -> bytes:
    response_id, model = source
    payload = {"id": response_id, "object": "chat.completion.chunk", "model": model, **fields}
    return f"data: {json.dumps(payload)}\n\n".encode()


async def _play(
    step: Step, response: web.StreamResponse, request: web.BaseRequest, source: tuple[str, str]
) -> None:
    if isinstance(step, Text):
        choice = {"index": 0, "delta": {"content": step.content}, "finish_reason": None}
        await response.write(_event(source, choices=[choice]))
    elif isinstance(step, Raw):
        await response.write(step.data)
    elif isinstance(step, Finish):
        choice = {"index": 0, "delta": {}, "finish_reason": step.reason}
        usage: dict[str, Any] = {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        }
        if step.cost is not None:
            usage["cost"] = step.cost
        await response.write(
            _event(source, choices=[choice]) + _event(source, choices=[], usage=usage)
        )
    elif isinstance(step, StreamError):
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        error = {"code": step.code, "message": step.message}
        await response.write(_event(source, error=error, choices=[choice]))
    elif isinstance(step, Wait):
        await step.gate.wait()
    elif isinstance(step, Reached):
        step.mark.set()
    elif isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
    elif isinstance(step, Stall):
        await asyncio.Event().wait()  # cancelled when the client goes away
    elif isinstance(step, Reset):
        transport = request.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        # Linger on, timeout 0: closing sends RST instead of FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        await asyncio.Event().wait()  # cancelled as the connection is lost
    else:
        raise AssertionError(f"unknown step {step!r}")
