"""CPU of one chat's upstream side, in-process: request, SSE stream, deltas, a run's pieces.

Starts `aipasta simulate-upstream` as its own process (no delay between tokens unless
`--token-delay-ms`), so the CPU this process spends is the gateway's share only:
aiohttp sending the request and reading the stream, `OpenAICompatibleClient.stream_chat`
and, with `--run`, `ChatRun.deltas()` (retry set-up, pieces, reasoning details, tool calls). Runs
`--requests` chats, `--concurrency` at once, and prints process CPU per request and per
token. `--profile FILE` writes a cProfile of the measured part.

`--canned` leaves out the network and aiohttp instead: the client gets a stand-in
session whose response hands out the simulator's answer (as bench/chat_parse.py builds
it), one event per read, so only the gateway's own code is measured, in one process,
with figures that hold on a busy machine.

    .venv/bin/python bench/upstream_read.py [--run] [--canned] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
from chat_parse import answer

from providers.chat import ChatRequest
from providers.model import ModelInfo
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.payload import Dialect
from resolvers.chat.inputs import CheckedMessage, CheckedOptions, Conversation
from resolvers.chat.run import ChatRun, RetryRules
from schema.types.enums import ChatRole

MODEL = ModelInfo(provider="openrouter", upstream_id="sim/chat", name="m")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/models") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the simulator did not start")


class CannedContent:
    def __init__(self, events: list[bytes]) -> None:
        self._events = iter(events)

    async def readany(self) -> bytes:
        return next(self._events, b"")


class CannedResponse:
    status = 200

    def __init__(self, events: list[bytes]) -> None:
        self.headers = {"Content-Type": "text/event-stream"}
        self.content = CannedContent(events)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class CannedSession:
    """What the client uses of an aiohttp session, answering every chat the same way."""

    def __init__(self, tokens: int) -> None:
        self._events = answer(tokens)

    async def post(self, url: str, **kwargs: object) -> CannedResponse:
        return CannedResponse(self._events)


async def measure(args: argparse.Namespace, url: str | None) -> None:
    if url is not None:
        await wait_until_up(url)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as real_session:
        session: Any = CannedSession(args.tokens) if url is None else real_session
        client = OpenAICompatibleClient(
            session,
            name="openrouter",
            base_url=url or "http://127.0.0.1",
            api_key=None,
            timeouts=ChatTimeouts(),
            dialect=Dialect.OPENROUTER,
        )
        providers = {"openrouter": client}
        conversation = Conversation(
            [CheckedMessage(ChatRole.USER, "Say something about pasta.", [])],
            CheckedOptions(),
            None,
        )
        request = ChatRequest(
            model=MODEL.upstream_id, messages=[{"role": "user", "content": "Say something."}]
        )

        async def one() -> int:
            if args.run:
                run = ChatRun(conversation, [MODEL], providers, rules=RetryRules())
                count = 0
                async for _piece in run.deltas():
                    count += 1
                if run.result().error is not None:
                    raise RuntimeError(f"the run failed: {run.result().error}")
                return count
            return sum([1 async for _delta in client.stream_chat(request)])

        async def worker(todo: list[int]) -> int:
            got = 0
            while todo:
                todo.pop()
                got += await one()
            return got

        await asyncio.gather(*(worker(list(range(2))) for _ in range(args.concurrency)))
        todo = list(range(args.requests))
        profile = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profile is not None:
            profile.enable()
        pieces = await asyncio.gather(*(worker(todo) for _ in range(args.concurrency)))
        if profile is not None:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu = time.process_time() - started
        what = "ChatRun.deltas()" if args.run else "stream_chat()"
        print(
            f"{what}, c={args.concurrency}: {cpu / args.requests * 1e6:.0f} us CPU per request, "
            f"{cpu / sum(pieces) * 1e6:.1f} us per piece ({sum(pieces) / args.requests:.0f} "
            "pieces a request)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--token-delay-ms", type=float, default=0.0)
    parser.add_argument("--run", action="store_true", help="through ChatRun.deltas()")
    parser.add_argument("--profile", help="write a cProfile of the measured part here")
    parser.add_argument("--canned", action="store_true", help="no network: a canned answer")
    args = parser.parse_args()
    if args.canned:
        asyncio.run(measure(args, None))
        return 0
    port = free_port()
    aipasta = Path(sys.executable).with_name("aipasta")
    simulator = subprocess.Popen(
        [
            *(str(aipasta), "simulate-upstream", "--port", str(port)),
            *("--tokens", str(args.tokens), "--token-delay-ms", str(args.token_delay_ms)),
        ],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(measure(args, f"http://127.0.0.1:{port}/api/v1"))
    finally:
        simulator.terminate()
        simulator.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
