"""The HTTP edge's cost: CPU per request to /graphql, through the whole ASGI app.

In-process: the real app (aipasta.app.create_app, its lifespan run here, the embedded
database in a temporary folder) is called straight as an ASGI callable, one request after
another, with no HTTP server or client: what is measured is the app's own CPU
(time.process_time) for each request, from the edge middleware through Strawberry and
back. The catalog comes from the fake upstream (tests.support.fake_upstream, the
fixtures' listings), which also answers the chat mutation: its CPU is in the chat figure
(it runs in this process), not in the others. Prints numbers only.

    .venv/bin/python bench/edge.py [--requests 2000] [--profile typename|catalog|...]

`--profile NAME` runs that scenario once more under cProfile and prints the top entries
by internal time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.applications import Starlette
from starlette.types import Message

from aipasta.app import create_app
from aipasta.settings import Settings
from tests.support.fake_upstream import FakeUpstream, answer

CATALOG = "{ modelCatalog { all { id name pricing { promptPerMillion completionPerMillion } } } }"
# Not public (it changes per request): runs every time, through Strawberry.
UNCACHED = "{ modelCatalog { cached stats { total } } }"
MODELS_PAGE = "{ models(first: 50) { totalCount nodes { id name } } }"
CHAT = """mutation ($input: ChatInput!) {
  chat(input: $input) { message { content } usage { completionTokens } }
}"""
CHAT_MODEL = "mistralai/mistral-7b-instruct"
CHAT_INPUT = {
    "input": {"model": f"openrouter:{CHAT_MODEL}", "messages": [{"role": "USER", "content": "hi"}]}
}
UNLIMITED = "1000000/minute"


class Caller:
    """One ASGI request at a time into `app`, as uvicorn would hand it over."""

    def __init__(self, app: Starlette, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def request(
        self,
        method: str,
        *,
        body: bytes = b"",
        query_string: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, bytes]:
        sent: list[Message] = []
        done = asyncio.Event()
        given = False

        async def receive() -> Message:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                done.set()

        all_headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench"),
            (b"accept", b"application/json"),
            *(headers or []),
        ]
        if method == "POST":
            all_headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "query_string": query_string,
            "headers": all_headers,
            "state": self.state.copy(),
        }
        await self.app(scope, receive, send)
        done.set()
        status = next(m["status"] for m in sent if m["type"] == "http.response.start")
        return status, b"".join(
            m.get("body", b"") for m in sent if m["type"] != "http.response.start"
        )

    def post(
        self, query: str, variables: dict[str, Any] | None = None
    ) -> Callable[[], Awaitable[tuple[int, bytes]]]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        return lambda: self.request("POST", body=body)

    def get(self, query: str) -> Callable[[], Awaitable[tuple[int, bytes]]]:
        query_string = urlencode({"query": query}).encode()
        return lambda: self.request("GET", query_string=query_string)


async def measure(call: Callable[[], Awaitable[tuple[int, bytes]]], n: int) -> tuple[float, float]:
    """CPU and wall milliseconds per request over `n` sequential requests."""
    for _ in range(min(50, n)):  # warm up (and check)
        status, body = await call()
        if status != 200 or b'"errors"' in body:
            raise RuntimeError(f"{status}: {body[:300]!r}")
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        await call()
    return (time.process_time() - cpu) * 1000 / n, (time.perf_counter() - wall) * 1000 / n


async def main(requests: int, profile: str | None, cumulative: bool) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    upstream.serve_catalogs()
    upstream.default(CHAT_MODEL, answer("Hello", " there", prompt_tokens=3, completion_tokens=2))
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            _env_file=None,
            AIPASTA_DATA_DIR=data_dir,
            AIPASTA_LOG_LEVEL="WARNING",
            AIPASTA_SIMULATOR="off",
            AIPASTA_AUTH="off",
            OPENROUTER_BASE_URL=upstream.url("openrouter"),
            HUGGINGFACE_BASE_URL=upstream.url("hf"),
            OPENROUTER_API_KEY="sk-or-v1-bench",
            HUGGINGFACE_API_KEY="hf_bench",
            # Measuring the edge, not its limiter's refusals.
            AIPASTA_RATE_LIMIT=UNLIMITED,
            AIPASTA_USER_RATE_LIMIT=UNLIMITED,
            AIPASTA_IP_FLOOD_LIMIT=UNLIMITED,
        )
        app = create_app(settings)
        async with AsyncExitStack() as stack:
            lifespan: Any = app.router.lifespan_context(app)
            state: dict[str, Any] = dict(await stack.enter_async_context(lifespan))
            caller = Caller(app, state)
            await state["services"].catalog.settled()
            scenarios = {
                "typename": ("{ __typename }", caller.post("{ __typename }")),
                "uncached": ("{ modelCatalog { cached } }", caller.post(UNCACHED)),
                "catalog": ("cached modelCatalog (POST)", caller.post(CATALOG)),
                "catalog-get": ("cached modelCatalog (GET)", caller.get(CATALOG)),
                "models": ("models(first: 50) (POST)", caller.post(MODELS_PAGE)),
                "chat": ("chat mutation (fake upstream)", caller.post(CHAT, CHAT_INPUT)),
            }
            for name, (label, call) in scenarios.items():
                n = requests // 4 if name == "chat" else requests
                cpu, wall = await measure(call, n)
                print(f"{label:<32} n={n:<6} cpu={cpu:6.3f} ms/req  wall={wall:6.3f} ms/req")
            if profile is not None:
                _, call = scenarios[profile]
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(requests):
                    await call()
                profiler.disable()
                sort = "cumulative" if cumulative else "tottime"
                pstats.Stats(profiler).sort_stats(sort).print_stats(45)
    await upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--profile", choices=["typename", "uncached", "catalog", "catalog-get", "models", "chat"]
    )
    parser.add_argument("--cumulative", action="store_true", help="sort the profile so")
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.profile, args.cumulative))
