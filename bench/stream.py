"""Streaming overhead: tokens through the gateway over a real websocket.

A fake upstream on loopback sends N content chunks, `--gap-ms` apart; the client
subscribes to `chatStream` with graphql-transport-ws. Printed for each coalescing
window: time to first delta, total time, events the client received, and chunks per
second through the gateway. Prints numbers only.

    .venv/bin/python bench/stream.py [--chunks 2000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aipasta.app import create_app
from aipasta.settings import Settings
from tests.streaming.conftest import GraphQLWebSocket
from tests.support.fake_upstream import FakeUpstream, Sleep, Text, steps
from tests.support.server import serve

MODEL = "openrouter:mistralai/mistral-7b-instruct"
QUERY = """
subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { index content }
    ... on ChatCompleted { content timeToFirstTokenMs }
    ... on ChatFailed { code message }
  }
}
"""


async def one_run(
    ws: GraphQLWebSocket, upstream: FakeUpstream, chunks: int, gap: float
) -> tuple[float, float, int, float]:
    script: list[Text | Sleep] = []
    for i in range(chunks):
        script.append(Text(f"tok{i} "))
        if gap:
            script.append(Sleep(gap))
    upstream.script("mistralai/mistral-7b-instruct", steps(*script))
    variables = {"input": {"model": MODEL, "messages": [{"role": "USER", "content": "go"}]}}
    start = time.perf_counter()
    op = await ws.subscribe(QUERY, variables)
    first: float | None = None
    events = 0
    upstream_first = 0.0
    while True:
        message = await ws.message(op)
        if message["type"] == "complete":
            break
        event = message["payload"]["data"]["chatStream"]
        events += 1
        if first is None:
            first = time.perf_counter() - start
        if event["__typename"] != "ChatDelta":
            assert event["__typename"] == "ChatCompleted", event
            upstream_first = event["timeToFirstTokenMs"]
    total = time.perf_counter() - start
    return first or total, total, events, upstream_first


async def main(chunks: int, runs: int, gap_ms: float) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    upstream.serve_catalogs()
    print(f"{chunks} upstream chunks per answer, {gap_ms:g} ms apart, {runs} runs each (medians)")
    for window_ms in (0, 30):
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(
                _env_file=None,
                AIPASTA_DATA_DIR=data_dir,
                AIPASTA_LOG_LEVEL="WARNING",
                AIPASTA_AUTH="off",
                AIPASTA_RATE_LIMIT="1000000/minute",
                AIPASTA_USER_RATE_LIMIT="1000000/minute",
                AIPASTA_STREAM_COALESCE_MS=window_ms,
                OPENROUTER_BASE_URL=upstream.url("openrouter"),
                HUGGINGFACE_BASE_URL=upstream.url("hf"),
            )
            async with serve(create_app(settings)) as app:
                ws = await GraphQLWebSocket.open(app)
                await one_run(ws, upstream, 10, 0)  # warm the catalog and the connection
                results = [await one_run(ws, upstream, chunks, gap_ms / 1000) for _ in range(runs)]
                await ws.close()
        first = statistics.median(r[0] for r in results) * 1000
        total = statistics.median(r[1] for r in results)
        events = statistics.median(r[2] for r in results)
        upstream_first = statistics.median(r[3] for r in results)
        print(
            f"coalesce {window_ms:>3} ms: first delta {first:7.2f} ms "
            f"(of which waiting for upstream {upstream_first:6.2f} ms), "
            f"whole answer {total * 1000:8.1f} ms, {events:6.0f} events to the client, "
            f"{chunks / total:9.0f} chunks/s"
        )
    await upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gap-ms", type=float, default=2.0, help="upstream time between chunks")
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.runs, args.gap_ms))
