"""Catalog query speed: cold fetch, then cached `modelCatalog` and `models` pages.

Runs the real app (`aipasta serve`, a process of its own, so its CPU time is read from
/proc apart from the load generator's) on loopback with the embedded database in a
temporary folder and a fake upstream serving a catalog of realistic size. Prints
numbers only. `--no-answer-cache` measures without the answer cache.

    .venv/bin/python bench/catalog.py [--models 400] [--requests 300] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.server import RunningApp

FULL = "{ modelCatalog { all { id name pricing { promptPerMillion } } stats { total } } }"
PAGE = '{ models(first: 50, filter: {search: "model-1"}) { totalCount nodes { id } } }'
FIRST_50 = "{ models(first: 50) { totalCount nodes { id name } } }"
ROOT = Path(__file__).resolve().parent.parent


def openrouter_listing(count: int) -> dict[str, Any]:
    return {
        "data": [
            {
                "id": f"vendor{i % 20}/model-{i}",
                "name": f"Vendor {i % 20}: Model {i}",
                "description": "A model. " * 40,
                "context_length": 8192 * (1 + i % 16),
                "architecture": {
                    "input_modalities": ["text", "image"] if i % 3 == 0 else ["text"],
                    "output_modalities": ["text"],
                },
                "pricing": {"prompt": f"0.00000{i % 9 + 1}", "completion": "0.000002"},
                "supported_parameters": ["max_tokens", "temperature", "tools"],
            }
            for i in range(count)
        ]
    }


def hf_listing(count: int) -> dict[str, Any]:
    return {
        "data": [
            {
                "id": f"org{i % 10}/hf-model-{i}",
                "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
                "providers": [
                    {"provider": "a", "status": "live", "pricing": {"input": 0.1, "output": 0.2}},
                    {"provider": "b", "status": "error"},
                ],
            }
            for i in range(count)
        ]
    }


async def timed(app: RunningApp, query: str, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with semaphore:
            start = time.perf_counter()
            body = await app.graphql(query)
            latencies.append((time.perf_counter() - start) * 1000)
            assert "errors" not in body, body

    await asyncio.gather(*(one() for _ in range(n)))
    return latencies


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, latencies: list[float], wall: float, cpu: float) -> None:
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(
        f"{name:<28} n={len(ordered):<5} p50={statistics.median(ordered):7.2f} ms "
        f"p95={p95:7.2f} ms  throughput={len(ordered) / wall:8.1f} req/s  "
        f"gateway cpu={cpu * 1000 / len(ordered):5.2f} ms/req"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def main(models: int, requests: int, concurrency: int, answer_cache: bool) -> None:
    upstream = FakeUpstream()
    await upstream.start()
    upstream.set("/openrouter/models", Reply(body=openrouter_listing(models)))
    upstream.set("/hf/models", Reply(body=hf_listing(models // 2)))
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AIPASTA_DATA_DIR": data_dir,
            "AIPASTA_LOG_LEVEL": "WARNING",
            "AIPASTA_SIMULATOR": "off",
            "OPENROUTER_BASE_URL": upstream.url("openrouter"),
            "HUGGINGFACE_BASE_URL": upstream.url("hf"),
            # Measuring the gateway, not its limiter.
            "AIPASTA_RATE_LIMIT": "1000000/minute",
            "AIPASTA_IP_FLOOD_LIMIT": "1000000/minute",
        }
        if not answer_cache:
            env["AIPASTA_ANSWER_CACHE_BYTES"] = "0"
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", "import sys, aipasta.cli; sys.exit(aipasta.cli.main())"),
            *("serve", "--port", str(port)),
            env=env,
            cwd=data_dir,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            async with aiohttp.ClientSession() as http:
                app = RunningApp(f"http://127.0.0.1:{port}", http)
                while server.returncode is None:
                    try:
                        status, _ = await app.get("/health")
                    except aiohttp.ClientConnectionError:
                        status = 0
                    if status == 200:
                        break
                    await asyncio.sleep(0.1)
                start = time.perf_counter()
                body = await app.graphql("{ modelCatalog { cached stats { total } } }")
                cold = (time.perf_counter() - start) * 1000
                total = body["data"]["modelCatalog"]["stats"]["total"]
                print(
                    f"catalog of {total} models; cold query (fetch + parse + store) {cold:.1f} ms"
                )
                for name, query in (
                    ("cached modelCatalog (full)", FULL),
                    ("models(first: 50)", FIRST_50),
                    ("models page + search", PAGE),
                ):
                    await timed(app, query, 20, concurrency)  # warm up
                    start, cpu = time.perf_counter(), cpu_seconds(server.pid)
                    latencies = await timed(app, query, requests, concurrency)
                    wall = time.perf_counter() - start
                    report(name, latencies, wall, cpu_seconds(server.pid) - cpu)
        finally:
            server.terminate()
            await server.wait()
        print(f"upstream calls: {dict(upstream.calls)}")
    await upstream.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=400)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--no-answer-cache", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.models, args.requests, args.concurrency, not args.no_answer_cache))
