"""Streaming overhead: tokens through the gateway over a real websocket.

A fake upstream on loopback sends N content chunks, `--gap-ms` apart; the client
subscribes to `chatStream` with graphql-transport-ws. Printed for each coalescing
window: time to first delta, total time, events the client received, and chunks per
second through the gateway. Prints numbers only.

    .venv/bin/python bench/stream.py [--chunks 2000] [--runs 3]

`--processes` measures instead what `make bench` measures for streams, and only that:
the simulators and the gateway as processes (bench/run.py's set-up: gateway on CPU 1,
an empty database), then `chatStream` of 50 tokens with no delay at c=50, with 20 ms
between tokens at c=50 (`--paced`) and `--wide N` streams at 50 ms per token at once;
gateway CPU per stream and per token from /proc, latencies against the simulator
measured straight in the same run. `--profile FILE` keeps a py-spy profile (raw
collapsed stacks) of the gateway during the first scenario run. About 30 s; compare
two commits by running it on each, back to back.

    .venv/bin/python bench/stream.py --processes [--paced] [--wide 1000] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import run as bench  # bench/run.py: its processes, clients and CPU meter
from load import Streams, percentile
from procstat import CpuMeter, rss_mb

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


async def processes(args: argparse.Namespace) -> None:
    """The stream scenarios of `make bench`, gateway and simulators as processes."""

    def ms(streams: Streams, q: float) -> float:
        return (percentile(streams.first_tokens(), q) or 0.0) * 1000

    with tempfile.TemporaryDirectory() as workdir:
        b = bench.Bench(argparse.Namespace(quick=True), Path(workdir))
        bench._pin_self(0)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as b.http,
            bench._listing() as listing,
        ):
            try:
                for name, delay in (("sim0", 0.0), ("sim20", 20.0), ("sim50", 50.0)):
                    await b.start_upstream(name, delay)
                (Path(workdir) / "data").mkdir()
                await b.start_gateway(listing)
                await b._wait_catalog()
                assert b.gateway is not None
                await b.gateway_streams("openrouter:sim/chat", 5, 20, 5)  # warm up
                profiler = None
                if args.profile:
                    profiler = await asyncio.create_subprocess_exec(
                        *(shutil.which("py-spy") or str(bench.BIN / "py-spy"), "record"),
                        *("--pid", str(b.gateway.pid), "--rate", "250", "--nonblocking"),
                        *("--duration", str(int(args.seconds)), "--format", "raw"),
                        *("--full-filenames", "-o", str(args.profile)),
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=asyncio.subprocess.DEVNULL,
                    )
                meter = CpuMeter({"gateway": b.gateway.pid})
                meter.start()
                g = await b.gateway_streams("openrouter:sim/chat", 50, 10**9, args.seconds)
                cpu = meter.stop()["gateway"]
                print(
                    f"no delay, c=50: {g.rate:.0f} streams/s, "
                    f"{cpu / max(g.tokens, 1) * 1e6:.1f} µs CPU per token, "
                    f"{cpu / max(len(g.streams), 1) * 1e3:.2f} ms CPU per stream, "
                    f"failures {dict(g.failures)}"
                )
                if profiler is not None:
                    await profiler.wait()
                if args.paced:
                    d = await b.direct_streams(
                        b.upstreams["sim20"], concurrency=50, count=10**9, seconds=args.seconds
                    )
                    meter.start()
                    g = await b.gateway_streams("sim20:sim/chat", 50, 10**9, args.seconds)
                    cpu = meter.stop()["gateway"]
                    print(
                        f"20 ms/token, c=50: added first token p50 {ms(g, 0.5) - ms(d, 0.5):.1f} "
                        f"p99 {ms(g, 0.99) - ms(d, 0.99):.1f} ms, "
                        f"{cpu / max(g.tokens, 1) * 1e6:.1f} µs CPU per token, "
                        f"gap p99 {(percentile(g.gaps(), 0.99) or 0) * 1000:.1f} ms, "
                        f"failures {dict(g.failures)}"
                    )
                if args.wide:
                    n = args.wide
                    d = await b.direct_streams(
                        b.upstreams["sim50"], concurrency=n, count=n, seconds=60
                    )
                    meter.start()
                    g = await b.gateway_streams("sim50:sim/chat", n, n, 60, per_socket=20)
                    cpu = meter.stop()["gateway"]
                    print(
                        f"{n} streams at once, 50 ms/token: {len(g.completed)} complete, "
                        f"added first token p50 {ms(g, 0.5) - ms(d, 0.5):.0f} "
                        f"p99 {ms(g, 0.99) - ms(d, 0.99):.0f} ms, "
                        f"gap p99 {(percentile(g.gaps(), 0.99) or 0) * 1000:.0f} ms, "
                        f"gateway CPU {cpu:.2f} s ({cpu / n * 1e3:.1f} ms per stream), "
                        f"RSS after {rss_mb(b.gateway.pid):.0f} MB"
                    )
            finally:
                b.stop_all()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gap-ms", type=float, default=2.0, help="upstream time between chunks")
    parser.add_argument("--processes", action="store_true", help="make bench's stream scenarios")
    parser.add_argument("--paced", action="store_true", help="with --processes: 20 ms/token")
    parser.add_argument("--wide", type=int, default=0, help="with --processes: N streams at once")
    parser.add_argument("--seconds", type=float, default=6.0, help="with --processes: per phase")
    parser.add_argument("--profile", type=Path, help="with --processes: py-spy raw output")
    args = parser.parse_args()
    if args.processes:
        asyncio.run(processes(args))
    else:
        asyncio.run(main(args.chunks, args.runs, args.gap_ms))
