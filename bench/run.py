"""`make bench`: the gateway beside the physical limit, on this machine.

Starts upstream simulators (`aipasta simulate-upstream`, one per token delay) and the
gateway (`aipasta serve`, embedded database in a temporary data folder, limits raised
for the run) as subprocesses on loopback, pinned with `taskset` (gateway on CPU 1,
this harness and the simulators on CPU 0), then runs each scenario twice: straight
against the simulator, and through the gateway. Prints one table; every figure that
has an upstream equivalent stands next to it, with the ratio. Gateway CPU is read
from /proc/<pid>/stat; the embedded database is its own process and reported apart.
Bounded by count and time: about 3 minutes, `--quick` about 1.

    .venv/bin/python bench/run.py [--quick] [--profile] [--messages N] ...
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from catalog import hf_listing
from fill import BIG_SESSION, fill
from load import GraphQLWS, Load, Streams, closed_loop, percentile, sse_stream
from procstat import CpuMeter, cpu_seconds, rss_mb

from tests.support.fake_upstream import FakeUpstream, Reply

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CATALOG_SIZE = 628  # the catalog: simulator models plus a listing of the rest
UNLIMITED = "1000000/minute"
DB_NAME = "aipasta"
USER = "local"  # who AIPASTA_AUTH=off serves
TOKENS = 50

CHAT = """mutation ($input: ChatInput!) {
  chat(input: $input) { message { content } usage { completionTokens } }
}"""
STREAM = """subscription ($input: ChatInput!) {
  chatStream(input: $input) {
    __typename
    ... on ChatDelta { content }
    ... on ChatCompleted { usage { completionTokens } }
    ... on ChatFailed { code message }
  }
}"""
CATALOG = "{ modelCatalog { all { id name pricing { promptPerMillion completionPerMillion } } } }"
MODELS_PAGE = "{ models(first: 50) { totalCount nodes { id name } } }"
HISTORY = """query ($s: ID!) {
  chatHistory(sessionId: $s, last: 50) { nodes { id content role timestamp } }
}"""
SESSIONS = "{ chatSessions(first: 20) { nodes { id title messageCount updatedAt } } }"
USAGE_BY_DAY = "{ usage(groupBy: DAY) { totalRequests totalCost rows { key requests } } }"


@dataclass(frozen=True)
class Size:
    chat_c1: int
    seconds: float
    history_messages: int
    big_session: int
    usage_records: int
    wide_streams: int
    query_count: int
    query_seconds: float
    profile_seconds: float


FULL = Size(1000, 8.0, 200_000, 20_000, 100_000, 1000, 200, 10.0, 10.0)
QUICK = Size(300, 2.0, 20_000, 2_000, 10_000, 300, 60, 4.0, 4.0)


@dataclass
class Row:
    scenario: str
    figure: str
    gateway: float | None
    direct: float | None = None
    unit: str = ""
    target: str = ""
    ratio: bool = True


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def failures(self, scenario: str, failures: Counter[str], total: int) -> None:
        if failures:
            top = ", ".join(f"{reason} x{n}" for reason, n in failures.most_common(3))
            self.notes.append(f"{scenario}: {sum(failures.values())} of {total} failed ({top})")


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("ms", "µs", "MB", "s"):
        text = (
            f"{value:.2f}"
            if abs(value) < 10
            else f"{value:.1f}"
            if abs(value) < 100
            else f"{value:.0f}"
        )
        return f"{text} {unit}"
    return f"{value:.0f}{' ' + unit if unit else ''}"


def render(report: Report) -> str:
    header = ("Scenario", "Figure", "Gateway", "Direct", "Ratio", "Target")
    lines = []
    for row in report.rows:
        ratio = "—"
        if row.ratio and row.gateway is not None and row.direct:
            ratio = f"{row.gateway / row.direct:.2f}x"
        lines.append(
            (
                row.scenario,
                row.figure,
                _fmt(row.gateway, row.unit),
                _fmt(row.direct, row.unit),
                ratio,
                row.target,
            )
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def line(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cells) for cells in lines]
    return "\n".join(out)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cpu: int) -> list[str]:
    taskset = shutil.which("taskset")
    if taskset is None or (os.cpu_count() or 1) < 2:
        return []
    return [taskset, "-c", str(cpu)]


@dataclass
class Upstream:
    name: str
    process: subprocess.Popen[bytes]
    url: str  # the API base, ending in /api/v1


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.size = QUICK if args.quick else FULL
        self.workdir = workdir
        self.report = Report()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.upstreams: dict[str, Upstream] = {}
        self.gateway: subprocess.Popen[bytes] | None = None
        self.gateway_url = ""
        self.db_pid = 0
        self.db_port = 0
        self.http: aiohttp.ClientSession

    # --- processes -------------------------------------------------------------------

    def _spawn(self, command: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        with (self.workdir / log).open("wb") as out:
            process = subprocess.Popen(
                command, env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    async def start_upstream(self, name: str, delay_ms: float) -> Upstream:
        port = _free_port()
        command = [
            *_pin(0),
            str(BIN / "aipasta"),
            "simulate-upstream",
            "--port",
            str(port),
            "--tokens",
            str(TOKENS),
            "--token-delay-ms",
            str(delay_ms),
            "--seed",
            "1",
        ]
        process = self._spawn(command, self._env({}), f"{name}.log")
        url = f"http://127.0.0.1:{port}/api/v1"
        await self._wait(lambda: self._ok(f"{url}/models"), f"simulator {name}", process)
        upstream = Upstream(name, process, url)
        self.upstreams[name] = upstream
        return upstream

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIPASTA_", "OPENROUTER_", "HUGGINGFACE_", "MONGODB_"))
        }
        env["PYTHONPATH"] = str(ROOT)
        return {**env, **extra}

    async def _ok(self, url: str) -> bool:
        try:
            async with self.http.get(url) as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    async def _wait(
        self, probe: Callable[[], Awaitable[bool]], what: str, process: subprocess.Popen[bytes]
    ) -> float:
        started = time.perf_counter()
        while not await probe():
            if process.poll() is not None:
                raise RuntimeError(f"{what} exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise RuntimeError(f"{what} did not answer within 60 s")
            await asyncio.sleep(0.02)
        return time.perf_counter() - started

    async def start_gateway(self, listing_url: str) -> float:
        port = _free_port()
        providers = [
            {"name": name, "base_url": self.upstreams[name].url} for name in ("sim20", "sim50")
        ]
        env = self._env(
            {
                "AIPASTA_HOST": "127.0.0.1",
                "AIPASTA_PORT": str(port),
                "AIPASTA_DATA_DIR": str(self.workdir / "data"),
                "AIPASTA_AUTH": "off",
                "AIPASTA_ENV": "production",
                "AIPASTA_SIMULATOR": "off",
                "OPENROUTER_BASE_URL": self.upstreams["sim0"].url,
                "OPENROUTER_API_KEY": "bench-not-a-key",
                "HUGGINGFACE_BASE_URL": listing_url,
                "HUGGINGFACE_API_KEY": "bench-not-a-key",
                "AIPASTA_PROVIDERS": json.dumps(providers),
                "AIPASTA_RATE_LIMIT": UNLIMITED,
                "AIPASTA_USER_RATE_LIMIT": UNLIMITED,
                "AIPASTA_IP_FLOOD_LIMIT": UNLIMITED,
                "AIPASTA_MAX_STREAMS_PER_USER": "100000",
            }
        )
        self.gateway_url = f"http://127.0.0.1:{port}"
        self.gateway = self._spawn([*_pin(1), str(BIN / "aipasta"), "serve"], env, "gateway.log")
        return await self._wait(self._healthy, "the gateway", self.gateway)

    async def _healthy(self) -> bool:
        try:
            async with self.http.get(f"{self.gateway_url}/health") as response:
                body = await response.json()
                return response.status == 200 and body["services"]["database"] == "connected"
        except (aiohttp.ClientError, ValueError, KeyError):
            return False

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            _stop(process)
        # The gateway stops the embedded database as it leaves; make sure of it.
        if self.db_pid and Path(f"/proc/{self.db_pid}").exists():
            with suppress(ProcessLookupError):
                os.kill(self.db_pid, signal.SIGTERM)

    # --- clients ---------------------------------------------------------------------

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> str | None:
        body = {"query": query, "variables": variables or {}}
        async with self.http.post(f"{self.gateway_url}/graphql", json=body) as response:
            # orjson: the load side's JSON decoding of a 628-model answer must not be what
            # limits the catalog figures (json.loads took ~0.6 ms of CPU 0 per answer).
            answer = orjson.loads(await response.read())
        if response.status != 200 or answer.get("errors"):
            errors = answer.get("errors") or [{}]
            return str(errors[0].get("extensions", {}).get("code") or response.status)
        return None

    async def direct_chat(self) -> str | None:
        body = {"model": "sim/chat", "messages": [{"role": "user", "content": "hi"}]}
        async with self.http.post(f"{self.upstreams['sim0'].url}/chat/completions", json=body) as r:
            await r.read()
            return None if r.status == 200 else f"HTTP {r.status}"

    async def gateway_chat(self) -> str | None:
        return await self.graphql(CHAT, _chat_input("openrouter:sim/chat"))

    def meter(self) -> CpuMeter:
        assert self.gateway is not None
        pids = {"gateway": self.gateway.pid, "db": self.db_pid, "harness": os.getpid()}
        pids |= {name: up.process.pid for name, up in self.upstreams.items()}
        return CpuMeter(pids)

    # --- scenarios -------------------------------------------------------------------

    async def chat(self) -> None:
        size = self.size
        direct = await closed_loop(self.direct_chat, concurrency=1, count=size.chat_c1, seconds=30)
        meter = self.meter()
        meter.start()
        gateway = await closed_loop(
            self.gateway_chat, concurrency=1, count=size.chat_c1, seconds=30
        )
        spent = meter.stop()
        self.busy("chat c=1", spent, gateway.elapsed)
        self.report.failures("chat c=1", gateway.failures, gateway.done)
        for q, name, target in ((0.5, "p50", "<= 1.5 ms added"), (0.99, "p99", "<= 3 ms added")):
            g, d = _ms(percentile(gateway.latencies, q)), _ms(percentile(direct.latencies, q))
            self.report.add(
                Row("chat c=1", f"latency {name}", g, d, "ms"),
                Row(
                    "chat c=1",
                    f"added {name}",
                    None if g is None or d is None else g - d,
                    None,
                    "ms",
                    target,
                ),
            )

        cpu = _per(spent["gateway"], gateway.done, 1e3)
        self.report.add(Row("chat c=1", "CPU per request", cpu, None, "ms", ratio=False))

        meter.start()
        direct = await closed_loop(
            self.direct_chat, concurrency=50, count=10**9, seconds=size.seconds
        )
        upstream_cpu = meter.stop()["sim0"]
        meter.start()
        gateway = await closed_loop(
            self.gateway_chat, concurrency=50, count=10**9, seconds=size.seconds
        )
        spent = meter.stop()
        self.busy("chat c=50", spent, gateway.elapsed)
        self.report.failures("chat c=50", gateway.failures, gateway.done)
        self.report.add(
            Row("chat c=50", "requests/s", gateway.rate, direct.rate, "/s", ">= 1200/s"),
            Row(
                "chat c=50",
                "latency p99",
                _ms(percentile(gateway.latencies, 0.99)),
                _ms(percentile(direct.latencies, 0.99)),
                "ms",
            ),
            Row(
                "chat c=50",
                "CPU per request",
                _per(spent["gateway"], gateway.done, 1e3),
                _per(upstream_cpu, direct.done, 1e3),
                "ms",
                "<= 0.7 ms",
            ),
            Row(
                "chat c=50",
                "DB CPU per request",
                _per(spent["db"], gateway.done, 1e3),
                None,
                "ms",
                ratio=False,
            ),
        )
        if self.args.profile:
            await self.profile()

    async def profile(self) -> None:
        py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
        if not Path(py_spy).exists():  # noqa: ASYNC240
            self.report.notes.append("profile: py-spy not found (pip install py-spy)")
            return
        assert self.gateway is not None
        raw = self.workdir / "profile.txt"
        seconds = self.size.profile_seconds
        spy = await asyncio.create_subprocess_exec(
            *_pin(0),
            py_spy,
            "record",
            "--pid",
            str(self.gateway.pid),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            "--full-filenames",
            "-o",
            str(raw),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        await closed_loop(self.gateway_chat, concurrency=50, count=10**9, seconds=seconds + 1)
        _, err = await spy.communicate()
        if spy.returncode != 0 or not raw.exists():
            self.report.notes.append(f"profile: py-spy failed: {err.decode()[-300:]}")
            return
        self.report.notes.append("profile of chat c=50 (py-spy):\n" + summarize_profile(raw))
        if self.args.profile_out:
            shutil.copy(raw, self.args.profile_out)

    async def streams_no_delay(self) -> None:
        meter = self.meter()
        sim = self.upstreams["sim0"]
        meter.start()
        direct = await self.direct_streams(
            sim, concurrency=50, count=10**9, seconds=self.size.seconds
        )
        upstream_cpu = meter.stop()["sim0"]
        meter.start()
        gateway = await self.gateway_streams("openrouter:sim/chat", 50, 10**9, self.size.seconds)
        spent = meter.stop()
        gateway_cpu = spent["gateway"]
        self.busy("chatStream no delay", spent, gateway.elapsed)
        s = "chatStream 50 tok, no delay, c=50"
        self.report.failures(s, gateway.failures, len(gateway.streams))
        self.report.add(
            Row(s, "streams/s", gateway.rate, direct.rate, "/s", ">= 600/s"),
            Row(
                s,
                "CPU per token",
                _per(gateway_cpu, gateway.tokens, 1e6),
                _per(upstream_cpu, direct.tokens, 1e6),
                "µs",
                "<= 30 µs",
            ),
        )

    async def streams_paced(self) -> None:
        meter = self.meter()
        sim = self.upstreams["sim20"]
        meter.start()
        direct = await self.direct_streams(
            sim, concurrency=50, count=10**9, seconds=self.size.seconds
        )
        meter.stop()
        meter.start()
        gateway = await self.gateway_streams("sim20:sim/chat", 50, 10**9, self.size.seconds)
        spent = meter.stop()
        gateway_cpu = spent["gateway"]
        self.busy("chatStream 20 ms", spent, gateway.elapsed)
        s = "chatStream 20 ms/token, c=50"
        self.report.failures(s, gateway.failures, len(gateway.streams))
        self._stream_rows(s, gateway, direct, ("<= 10 ms added", "<= 30 ms added", ""))
        self.report.add(
            Row(
                s,
                "CPU per token",
                _per(gateway_cpu, gateway.tokens, 1e6),
                None,
                "µs",
                "<= 60 µs",
                ratio=False,
            )
        )

    async def streams_wide(self) -> None:
        n = self.size.wide_streams
        sim = self.upstreams["sim50"]
        direct = await self.direct_streams(sim, concurrency=n, count=n, seconds=60)
        assert self.gateway is not None
        peak = 0.0
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(self.gateway.pid) if self.gateway else 0.0)
                with suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 0.2)

        sampler = asyncio.create_task(sample())
        meter = self.meter()
        meter.start()
        gateway = await self.gateway_streams("sim50:sim/chat", n, n, 60, per_socket=20)
        self.busy(f"{n} streams", meter.stop(), gateway.elapsed)
        done.set()
        await sampler
        s = f"{n} concurrent streams, 50 ms/token"
        self.report.failures(s, gateway.failures, len(gateway.streams))
        self.report.add(
            Row(s, "completed", len(gateway.completed), len(direct.completed), "", f"all {n}")
        )
        self._stream_rows(s, gateway, direct, ("<= 50 ms added", "", "<= 150 ms"))
        self.report.add(Row(s, "gateway RSS peak", peak, None, "MB", "<= 150 MB", ratio=False))

    def _stream_rows(
        self, s: str, gateway: Streams, direct: Streams, targets: tuple[str, str, str]
    ) -> None:
        for q, name, target in ((0.5, "p50", targets[0]), (0.99, "p99", targets[1])):
            g = _ms(percentile(gateway.first_tokens(), q))
            d = _ms(percentile(direct.first_tokens(), q))
            added = None if g is None or d is None else g - d
            self.report.add(
                Row(s, f"first token {name}", g, d, "ms"),
                Row(s, f"added first token {name}", added, None, "ms", target, ratio=False),
            )
        g, d = _ms(percentile(gateway.gaps(), 0.99)), _ms(percentile(direct.gaps(), 0.99))
        self.report.add(Row(s, "inter-event gap p99", g, d, "ms", targets[2]))

    async def direct_streams(
        self, sim: Upstream, *, concurrency: int, count: int, seconds: float
    ) -> Streams:
        result = Streams()
        url = f"{sim.url}/chat/completions"
        payload = {"model": "sim/chat", "messages": [{"role": "user", "content": "hi"}]}

        async def call() -> str | None:
            stream = await sse_stream(self.http, url, payload)
            result.streams.append(stream)
            return stream.failure

        load = await closed_loop(call, concurrency=concurrency, count=count, seconds=seconds)
        result.elapsed = load.elapsed
        return result

    async def gateway_streams(
        self, model: str, concurrency: int, count: int, seconds: float, *, per_socket: int = 1
    ) -> Streams:
        result = Streams()
        sockets = [
            await GraphQLWS.open(self.http, f"{self.gateway_url.replace('http', 'ws')}/graphql")
            for _ in range(-(-concurrency // per_socket))
        ]
        turn = iter(range(10**12))
        variables = _chat_input(model)

        async def call() -> str | None:
            ws = sockets[next(turn) % len(sockets)]
            stream = await ws.stream(STREAM, variables, within=60)
            result.streams.append(stream)
            return stream.failure

        try:
            load = await closed_loop(call, concurrency=concurrency, count=count, seconds=seconds)
        finally:
            for ws in sockets:
                await ws.close()
        result.elapsed = load.elapsed
        return result

    async def queries(
        self,
        scenario: str,
        query: str,
        variables: dict[str, Any] | None,
        *,
        concurrency: int,
        target: str,
    ) -> Load:
        meter = self.meter()
        meter.start()
        load = await closed_loop(
            lambda: self.graphql(query, variables),
            concurrency=concurrency,
            count=self.size.query_count,
            seconds=self.size.query_seconds,
        )
        spent = meter.stop()
        self.busy(scenario, spent, load.elapsed)
        self.report.failures(scenario, load.failures, load.done + sum(load.failures.values()))
        self.report.add(
            Row(scenario, "latency p50", _ms(percentile(load.latencies, 0.5)), None, "ms", target),
            Row(
                scenario,
                "CPU per query",
                _per(spent["gateway"], load.done, 1e3),
                None,
                "ms",
                ratio=False,
            ),
            Row(
                scenario,
                "DB CPU per query",
                _per(spent["db"], load.done, 1e3),
                None,
                "ms",
                ratio=False,
            ),
        )
        return load

    async def catalog(self) -> None:
        await self.graphql(CATALOG)  # the first answer may still fetch
        await self.queries(
            f"modelCatalog (cached, {CATALOG_SIZE} models) c=10",
            CATALOG,
            None,
            concurrency=10,
            target="<= 2 ms; CPU <= 0.3 ms",
        )
        await self.queries(
            "models(first: 50) c=10", MODELS_PAGE, None, concurrency=10, target="<= 1 ms"
        )

    async def history(self) -> None:
        size = self.size
        await self.queries(
            f"chatHistory(last: 50), {size.big_session}-message session of {size.history_messages}",
            HISTORY,
            {"s": BIG_SESSION},
            concurrency=1,
            target="<= 10 ms",
        )
        await self.queries(
            "chatSessions(first: 20)", SESSIONS, None, concurrency=1, target="<= 10 ms"
        )
        await self.queries(
            f"usage(groupBy: DAY), {size.usage_records} records",
            USAGE_BY_DAY,
            None,
            concurrency=1,
            target="<= 50 ms",
        )

    def memory(self, when: str) -> None:
        assert self.gateway is not None
        target = "<= 100 MB total" if when == "idle" else ""
        g, db = rss_mb(self.gateway.pid), rss_mb(self.db_pid)
        self.report.add(
            Row(f"RSS {when}", "gateway", g, None, "MB", target, ratio=False),
            Row(f"RSS {when}", "embedded database", db, None, "MB", ratio=False),
        )

    async def run(self) -> None:
        _pin_self(0)
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as self.http,
            _listing() as listing,
        ):
            try:
                for name, delay in (("sim0", 0.0), ("sim20", 20.0), ("sim50", 50.0)):
                    await self.start_upstream(name, delay)
                started = time.perf_counter()
                await self.prepare_database(listing)
                healthy = await self.start_gateway(listing)
                self.report.add(
                    Row(
                        "start to healthy",
                        "/health 200, database connected (filled database)",
                        healthy * 1000,
                        None,
                        "ms",
                        ratio=False,
                    )
                )
                state = json.loads((self.workdir / "data" / "embedded.json").read_text())
                self.db_pid, self.db_port = int(state["pid"]), int(state["port"])
                await self._wait_catalog()
                await asyncio.sleep(1.0)
                self.memory("idle")
                print(
                    f"gateway healthy after {healthy:.2f} s; running scenarios...", file=sys.stderr
                )
                await self.chat()
                await self.streams_no_delay()
                await self.streams_paced()
                await self.streams_wide()
                await self.catalog()
                await self.history()
                self.memory("after load")
                self.report.add(
                    Row(
                        "whole run",
                        "gateway CPU (s)",
                        cpu_seconds(self.gateway.pid) if self.gateway else None,
                        None,
                        "s",
                        ratio=False,
                    )
                )
                self.report.notes.append(f"total {time.perf_counter() - started:.0f} s after start")
            except BaseException:
                log = self.workdir / "gateway.log"
                if log.exists():
                    print(log.read_text()[-3000:], file=sys.stderr)
                raise
            finally:
                self.stop_all()

    async def prepare_database(self, listing: str) -> None:
        """The filled database folder: from the cache, else filled through a first gateway
        (which creates the indexes the way it always does) and kept in the cache."""
        size = self.size
        key = f"fill-v4-{_version('secantusdb')}-{size.history_messages}-{size.big_session}-"
        cached = self.args.cache_dir / f"{key}{size.usage_records}"
        target = self.workdir / "data" / "db"
        if cached.is_dir() and not self.args.no_cache:
            await asyncio.to_thread(shutil.copytree, cached, target)
            self.report.notes.append(f"database copied from the cache {cached}")
            return
        await self.start_gateway(listing)
        state = json.loads((self.workdir / "data" / "embedded.json").read_text())
        db_pid, db_port = int(state["pid"]), int(state["port"])
        filled = await asyncio.to_thread(
            fill,
            f"mongodb://127.0.0.1:{db_port}/?directConnection=true",
            DB_NAME,
            user=USER,
            messages=size.history_messages,
            big_session=size.big_session,
            usage_records=size.usage_records,
        )
        self.report.notes.append(
            f"database filled directly: {filled.messages} messages in {filled.sessions} sessions "
            f"({size.big_session} in one session of the bench user), {filled.usage_records} usage "
            f"records of that user, in {filled.seconds:.0f} s (kept in {cached})"
        )
        assert self.gateway is not None
        await asyncio.to_thread(_stop, self.gateway)
        self.processes.remove(self.gateway)
        await asyncio.to_thread(_wait_gone, db_pid, 30.0)
        if not self.args.no_cache:
            partial = cached.with_name(cached.name + ".partial")
            await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
            await asyncio.to_thread(shutil.copytree, target, partial)
            partial.rename(cached)

    def busy(self, scenario: str, spent: dict[str, float], elapsed: float) -> None:
        """How busy each core was: a saturated CPU 0 means the load side limits."""
        load_side = spent["harness"] + sum(spent[n] for n in self.upstreams)
        self.report.notes.append(
            f"{scenario}: CPU 0 (harness + simulators) {load_side / elapsed:.0%} busy; "
            f"CPU 1 gateway {spent['gateway'] / elapsed:.0%} + database {spent['db'] / elapsed:.0%}"
        )

    async def _wait_catalog(self) -> None:
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            body = {"query": "{ modelCatalog { stats { total } } }"}
            async with self.http.post(f"{self.gateway_url}/graphql", json=body) as response:
                answer = await response.json()
            total = (
                ((answer.get("data") or {}).get("modelCatalog") or {})
                .get("stats", {})
                .get("total", 0)
            )
            if total >= CATALOG_SIZE:
                return
            await asyncio.sleep(0.1)
        self.report.notes.append("the catalog did not reach its full size within 30 s")


def _chat_input(model: str) -> dict[str, Any]:
    return {"input": {"model": model, "messages": [{"role": "USER", "content": "hi"}]}}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_gone(pid: int, seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while Path(f"/proc/{pid}").exists() and time.perf_counter() < deadline:
        time.sleep(0.1)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def _per(total: float, count: int, scale: float) -> float | None:
    return total / count * scale if count else None


def _pin_self(cpu: int) -> None:
    if _pin(cpu):
        os.sched_setaffinity(0, {cpu})


@asynccontextmanager
async def _listing() -> Any:
    """The rest of a realistic catalog, served as the Hugging Face router lists it."""
    upstream = FakeUpstream()
    await upstream.start()
    upstream.set("/hf/models", Reply(body=hf_listing(CATALOG_SIZE - 15)))  # 3 simulators x 5 models
    try:
        yield upstream.url("hf")
    finally:
        await upstream.close()


def summarize_profile(raw: Path, top: int = 15) -> str:
    """From py-spy's raw output (collapsed stacks): self time by package, the functions
    with the most self time, and the project's functions with the most inclusive time."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        name, package, project = frames[-1]
        own[name] += n
        packages[package] += n
        for name, _, project in set(frames):
            if project:
                inclusive[name] += n

    def block(title: str, counts: Counter[str], limit: int = top) -> Iterator[str]:
        yield title
        for frame, n in counts.most_common(limit):
            yield f"  {100 * n / total:5.1f} %  {frame}"

    if not total:
        return "  (no samples)"
    return "\n".join(
        [
            f"  {total} samples",
            *block("  self time by package:", packages, 12),
            *block("  self time by function:", own),
            *block("  the project's functions, inclusive (with callees):", inclusive),
        ]
    )


_PROJECT = ("aipasta", "schema", "resolvers", "providers", "documents")


def _frame(frame: str) -> tuple[str, str, bool]:
    """`name (path/to/file.py:12)` -> (`name (dir/file.py)`, package, in the project)."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    if "site-packages" in parts:
        package = parts[parts.index("site-packages") + 1].removesuffix(".py")
        project = False
    elif path.startswith(str(ROOT)) or (parts and parts[0] in _PROJECT):
        package = parts[len(ROOT.parts)] if path.startswith(str(ROOT)) else parts[0]
        project = True
    else:
        lib = [i for i, part in enumerate(parts) if part.startswith("python3")]
        package = f"stdlib {parts[lib[-1] + 1].removesuffix('.py')}" if lib else path
        project = False
    return f"{name} ({short})", package, project


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller data and shorter runs (~1 min)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy profile of chat at c=50")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw profile here")
    parser.add_argument("--messages", type=int, help="chat messages in the database")
    parser.add_argument("--session-messages", type=int, help="messages in the queried session")
    parser.add_argument("--usage-records", type=int, help="usage records of the queried user")
    parser.add_argument("--streams", type=int, help="streams at once in the wide scenario")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "aipasta-bench",
        help="where filled databases are kept between runs",
    )
    parser.add_argument("--no-cache", action="store_true", help="fill the database afresh")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    bench_dir = tempfile.mkdtemp(prefix="aipasta-bench-")
    bench = Bench(args, Path(bench_dir))
    base = bench.size
    bench.size = dataclasses.replace(
        base,
        history_messages=args.messages or base.history_messages,
        big_session=args.session_messages or base.big_session,
        usage_records=args.usage_records or base.usage_records,
        wide_streams=args.streams or base.wide_streams,
    )
    try:
        asyncio.run(bench.run())
    finally:
        shutil.rmtree(bench_dir, ignore_errors=True)
    print(f"{machine()}; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(render(bench.report))
    for note in bench.report.notes:
        print(f"- {note}")
    return 0


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    pinned = "gateway on CPU 1, harness and simulators on CPU 0" if _pin(0) else "not pinned"
    return f"{os.cpu_count()} x {model}; {pinned}"


if __name__ == "__main__":
    sys.exit(main())
