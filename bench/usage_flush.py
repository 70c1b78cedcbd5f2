"""Event-loop time of one usage flush: how long a batch of records holds the loop.

Writes `--batches` batches of `--batch` records through the real UsageRecorder to the
embedded database (in a temporary folder) and prints, per batch, the wall time and the
CPU time of this process (the loop's own work: building, validating and encoding the
documents; the server runs in its own process). A second pass runs each flush beside a
probe task that only yields (`await asyncio.sleep(0)`) and prints the longest stretch the
flush held the loop in one piece: the loop thread's CPU time between two turns of the
probe, which is what a request waiting on the loop meanwhile would wait at least.
`--profile` prints the top of a cProfile.

    .venv/bin/python bench/usage_flush.py [--batches 30] [--batch 200] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aipasta.embedded import EmbeddedMongo
from documents.database import Database
from documents.registry import document_models
from providers.chat import TokenUsage
from resolvers.usage.recorder import UsageEntry, UsageRecorder
from schema.types.enums import MessageStatus


def entry(n: int) -> UsageEntry:
    return UsageEntry(
        user_id=f"user-{n % 50}",
        request_id=f"req-{n}",
        model="openrouter:deepseek/deepseek-chat",
        provider="openrouter",
        usage=TokenUsage(120, 340, 460),
        cost=Decimal("0.000123456789"),
        cost_known=True,
        latency_ms=812.5,
        status=MessageStatus.COMPLETE,
        created_at=datetime.now(UTC),
        time_to_first_token_ms=95.25,
    )


async def run(database: Database, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    recorder = UsageRecorder(database, batch_size=args.batch, max_buffer=args.batch * 2)
    walls, cpus = [], []
    for b in range(args.batches):
        for i in range(args.batch):
            recorder.record(entry(b * args.batch + i))
        wall, cpu = time.perf_counter(), time.process_time()
        assert await recorder.flush() == args.batch
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return walls, cpus


async def longest_holds(database: Database, args: argparse.Namespace) -> list[float]:
    """Per flush, the longest stretch (ms of loop-thread CPU) between two turns of a task
    that does nothing but yield: the flush's longest hold of the loop."""
    recorder = UsageRecorder(database, batch_size=args.batch, max_buffer=args.batch * 2)
    holds = []
    for b in range(args.batches):
        for i in range(args.batch):
            recorder.record(entry(b * args.batch + i))
        longest = 0.0
        flushing = asyncio.create_task(recorder.flush())
        while not flushing.done():  # the flush's first stretch included
            before = time.thread_time()
            await asyncio.sleep(0)
            longest = max(longest, time.thread_time() - before)
        assert flushing.result() == args.batch
        holds.append(longest * 1000)
    return holds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        embedded = EmbeddedMongo(Path(folder) / "data")
        lease = await asyncio.to_thread(embedded.acquire)
        database = Database(lease.uri, db_name="bench", document_models=document_models())
        try:
            await database.start()
            await run(database, argparse.Namespace(batches=2, batch=args.batch))  # warm up
            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            walls, cpus = await run(database, args)
            if profiler:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            holds = await longest_holds(database, args)
            print(
                f"flush of {args.batch} records: loop CPU p50 {statistics.median(cpus):.2f} ms, "
                f"wall p50 {statistics.median(walls):.2f} ms (max {max(walls):.2f} ms); "
                f"longest hold of the loop p50 {statistics.median(holds):.2f} ms "
                f"(max {max(holds):.2f} ms)"
            )
        finally:
            await database.close()
            await asyncio.to_thread(embedded.release, lease)


if __name__ == "__main__":
    asyncio.run(main())
