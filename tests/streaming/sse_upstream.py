"""A fake OpenAI-compatible provider on loopback: scripted SSE answers over real HTTP.

One aiohttp app plays both providers the gateway knows: `GET /<provider>/models` serves
the catalog fixtures and `POST /<provider>/chat/completions` plays a `Script` chosen by
the request's `model` (queued scripts first, then that model's default). Every chat
request is kept as a `ChatCall`, which notices when the gateway drops the connection
before the answer ended (the server cancels a handler whose client went away, and a
write to a closed connection raises `ConnectionResetError`).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.upstream import fixture_json

CATALOGS = {"openrouter": "openrouter_models.json", "hf": "huggingface_models.json"}


@dataclass(frozen=True)
class Text:
    """One SSE chunk carrying a piece of the answer."""

    content: str


@dataclass(frozen=True)
class Wait:
    """Send nothing until the test sets `gate`."""

    gate: asyncio.Event


@dataclass(frozen=True)
class Reached:
    """Set `mark`: everything before it has been written to the gateway's connection."""

    mark: asyncio.Event


@dataclass(frozen=True)
class Sleep:
    """A pause inside the scenario (the fake's timing, never the test's)."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Keep the connection open and never send another byte."""


@dataclass(frozen=True)
class StreamError:
    """An in-stream error chunk, as OpenRouter sends when a provider fails mid-answer."""

    code: int
    message: str


@dataclass(frozen=True)
class Finish:
    """The finish-reason chunk, then a usage chunk (OpenAI's `include_usage` shape)."""

    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    reason: str = "stop"


Step = Text | Wait | Reached | Sleep | Stall | StreamError | Finish


@dataclass(frozen=True)
class Script:
    """One answer: an HTTP error (`status` other than 200), or SSE `steps` then `[DONE]`."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = True


def answer(
    *pieces: str, prompt_tokens: int = 10, completion_tokens: int = 5, cost: float | None = None
) -> Script:
    steps: list[Step] = [Text(piece) for piece in pieces]
    steps.append(Finish(prompt_tokens, completion_tokens, cost))
    return Script(tuple(steps))


def steps(*script: Step, done: bool = True) -> Script:
    return Script(tuple(script), done=done)


def http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Script:
    body = {"error": {"code": status, "message": message}}
    return Script(status=status, body=body, headers=headers or {})


@dataclass
class ChatCall:
    """One chat request as the fake saw it."""

    provider: str
    model: str
    body: dict[str, Any]
    closed_by_client: asyncio.Event = field(default_factory=asyncio.Event)
    finished: bool = False

    async def wait_closed(self, within: float) -> None:
        """Return once the gateway dropped this request's connection; fail after `within`."""
        async with asyncio.timeout(within):
            await self.closed_by_client.wait()


class SSEUpstream:
    def __init__(self) -> None:
        self.calls: list[ChatCall] = []
        self.catalog_calls: dict[str, int] = defaultdict(int)
        self._queued: dict[str, deque[Script]] = defaultdict(deque)
        self._defaults: dict[str, Script] = {}
        self._arrived = asyncio.Condition()
        app = web.Application()
        app.router.add_get("/{provider}/models", self._models)
        app.router.add_post("/{provider}/chat/completions", self._chat)
        self._server = TestServer(app, host="127.0.0.1", port=0)

    async def start(self) -> None:
        # TestServer cancels a handler whose client went away; a short shutdown timeout
        # keeps teardown quick when a scenario leaves one stalled.
        await self._server.start_server(shutdown_timeout=1.0)

    async def close(self) -> None:
        await self._server.close()

    def url(self, provider: str) -> str:
        return str(self._server.make_url(f"/{provider}")).rstrip("/")

    def script(self, model: str, *scripts: Script) -> None:
        """Answer the next requests for `model` (its upstream id) with `scripts`, in order."""
        self._queued[model].extend(scripts)

    def default(self, model: str, script: Script) -> None:
        """Answer every request for `model` that no queued script is left for."""
        self._defaults[model] = script

    def calls_for(self, model: str) -> list[ChatCall]:
        return [call for call in self.calls if call.model == model]

    async def call(self, index: int, within: float = 5.0) -> ChatCall:
        """The `index`-th chat request, waiting (bounded) for it to arrive."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.calls) > index)
        return self.calls[index]

    async def _models(self, request: web.Request) -> web.Response:
        provider = request.match_info["provider"]
        self.catalog_calls[provider] += 1
        name = CATALOGS.get(provider)
        if name is None:
            return web.json_response({"error": {"message": "no such provider"}}, status=404)
        return web.json_response(fixture_json(name))

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        call = ChatCall(request.match_info["provider"], str(body.get("model")), body)
        async with self._arrived:
            self.calls.append(call)
            self._arrived.notify_all()
        queue = self._queued.get(call.model)
        script = queue.popleft() if queue else self._defaults.get(call.model)
        if script is None:
            script = http_error(404, f"no script for model {call.model}")
        if script.status != 200:
            call.finished = True
            return web.json_response(script.body, status=script.status, headers=script.headers)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            for step in script.steps:
                await _play(step, response, call)
            if script.done:
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            call.closed_by_client.set()
            raise
        call.finished = True
        return response


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _chunk(call: ChatCall, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"gen-{id(call)}",
        "object": "chat.completion.chunk",
        "model": call.model,
        **fields,
    }


async def _play(step: Step, response: web.StreamResponse, call: ChatCall) -> None:
    if isinstance(step, Text):
        choice = {"index": 0, "delta": {"content": step.content}, "finish_reason": None}
        await response.write(_event(_chunk(call, choices=[choice])))
    elif isinstance(step, Wait):
        await step.gate.wait()
    elif isinstance(step, Reached):
        step.mark.set()
    elif isinstance(step, Sleep):
        await asyncio.sleep(step.seconds)
    elif isinstance(step, Stall):
        await asyncio.Event().wait()
    elif isinstance(step, StreamError):
        choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
        error = {"code": step.code, "message": step.message}
        await response.write(_event(_chunk(call, error=error, choices=[choice])))
    else:
        choice = {"index": 0, "delta": {}, "finish_reason": step.reason}
        await response.write(_event(_chunk(call, choices=[choice])))
        usage: dict[str, Any] = {
            "prompt_tokens": step.prompt_tokens,
            "completion_tokens": step.completion_tokens,
            "total_tokens": step.prompt_tokens + step.completion_tokens,
        }
        if step.cost is not None:
            usage["cost"] = step.cost
        await response.write(_event(_chunk(call, choices=[], usage=usage)))
