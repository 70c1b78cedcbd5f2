"""A fake provider server on loopback: real HTTP, scripted answers, counted calls."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fixture_json(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    gate: asyncio.Event | None = None


class FakeUpstream:
    """Serves `/<provider>/models`; each path answers from its queue, else its default."""

    def __init__(self) -> None:
        self.defaults: dict[str, Reply] = {}
        self.queues: dict[str, list[Reply]] = defaultdict(list)
        self.calls: dict[str, int] = defaultdict(int)
        self.headers_seen: dict[str, list[dict[str, str]]] = defaultdict(list)
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        await self._server.start_server()

    async def close(self) -> None:
        await self._server.close()

    def url(self, prefix: str) -> str:
        return str(self._server.make_url(f"/{prefix}")).rstrip("/")

    def set(self, path: str, reply: Reply) -> None:
        self.defaults[path] = reply

    def enqueue(self, path: str, *replies: Reply) -> None:
        self.queues[path].extend(replies)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.calls[path] += 1
        self.headers_seen[path].append(dict(request.headers))
        queue = self.queues.get(path)
        reply = queue.pop(0) if queue else self.defaults.get(path)
        if reply is None:
            return web.json_response({"error": {"message": "no such route"}}, status=404)
        if reply.gate is not None:
            await reply.gate.wait()
        body = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
        return web.Response(
            status=reply.status,
            body=body,
            headers={"Content-Type": "application/json", **reply.headers},
        )
