"""`usage(groupBy: DAY)` over one user's usage records: from the records, then from the
per-day totals, on the embedded database (in a temporary folder).

Fills `--records` records of one user over 90 days with `bench/fill.py` (the shape an
older version stored: no totals yet), runs the query through the real schema and
resolver (no HTTP) while the report still reads the records, then runs the start-up
backfill and runs the query again from the totals; also a range that starts and ends
mid-day (whole days from the totals, the two cut days from the records). Prints p50 and
p99 wall time and the CPU of this process and of the database per query.

    .venv/bin/python bench/usage_report.py [--records 100000] [--queries 200] [--before 5]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fill import fill
from procstat import cpu_seconds
from starlette.requests import Request

from aipasta.embedded import EmbeddedMongo
from aipasta.settings import Settings
from documents.database import Database
from documents.registry import document_models
from resolvers.context import Context, Services
from resolvers.identity.identity import Identity
from resolvers.usage.totals import TotalsBackfill
from schema.build import build_schema

USER = "bench-user"
BY_DAY = """
query ($since: DateTime, $until: DateTime) {
  usage(groupBy: DAY, since: $since, until: $until) {
    totalRequests totalCost rows { key requests promptTokens totalCost avgLatencyMs }
  }
}
"""


def context(database: Database, folder: str) -> Context:
    required: dict[str, Any] = {
        f.name: None
        for f in dataclasses.fields(Services)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    settings = Settings(_env_file=None, AIPASTA_DATA_DIR=folder)
    services = Services(**{**required, "settings": settings, "database": database, "version": "b"})
    request = Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)})
    return Context(
        services=services, request=request, response=None, request_id="b", identity=Identity(USER)
    )


async def measure(
    label: str, count: int, run: Any, db_pid: int, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    walls: list[float] = []
    cpu, db_cpu = time.process_time(), cpu_seconds(db_pid)
    answer: dict[str, Any] = {}
    for _ in range(count):
        started = time.perf_counter()
        result = await run(variables)
        walls.append((time.perf_counter() - started) * 1000)
        assert not result.errors, result.errors
        answer = result.data["usage"]
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    db_ms = (cpu_seconds(db_pid) - db_cpu) * 1000 / count
    walls.sort()
    p99 = walls[min(len(walls) - 1, int(len(walls) * 0.99))]
    print(
        f"{label}: {count} queries, p50 {statistics.median(walls):.1f} ms, p99 {p99:.1f} ms; "
        f"CPU per query: gateway {cpu_ms:.1f} ms, database {db_ms:.1f} ms; "
        f"{len(answer['rows'])} rows, {answer['totalRequests']} requests"
    )
    return answer


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--before", type=int, default=5, help="queries from the records")
    args = parser.parse_args()
    schema = build_schema()
    with tempfile.TemporaryDirectory() as folder:
        embedded = EmbeddedMongo(Path(folder) / "data")
        lease = await asyncio.to_thread(embedded.acquire)
        # The records' aggregation takes seconds: past the gateway's default timeout.
        database = Database(
            lease.uri,
            db_name="bench",
            document_models=document_models(),
            operation_timeout_ms=600_000,
        )
        try:
            await database.start()
            filled = await asyncio.to_thread(
                fill,
                lease.uri,
                "bench",
                user=USER,
                messages=0,
                big_session=0,
                usage_records=args.records,
                usage_totals=False,
            )
            print(f"filled {filled.usage_records} usage records in {filled.seconds:.0f} s")
            ctx = context(database, folder)

            async def run(variables: dict[str, Any] | None) -> Any:
                return await schema.execute(BY_DAY, variable_values=variables, context_value=ctx)

            now = datetime.now(UTC)
            mid_days = {
                "since": (now - timedelta(days=30, hours=5)).isoformat(),
                "until": (now - timedelta(hours=7)).isoformat(),
            }
            before = await measure("from the records", args.before, run, lease.pid)
            await measure("from the records, mid-day range", args.before, run, lease.pid, mid_days)

            started, db_cpu = time.perf_counter(), cpu_seconds(lease.pid)
            backfill = TotalsBackfill(database)
            await backfill.start()
            await backfill.done.wait()
            await backfill.close()
            print(
                f"backfill of {backfill.scanned} records: {time.perf_counter() - started:.1f} s "
                f"(database CPU {cpu_seconds(lease.pid) - db_cpu:.1f} s)"
            )
            await run(None)  # warm up
            after = await measure("from the totals", args.queries, run, lease.pid)
            await measure("from the totals, mid-day range", args.queries, run, lease.pid, mid_days)
            assert after == before, "the totals must answer as the records do"
        finally:
            await database.close()
            await asyncio.to_thread(embedded.release, lease)


if __name__ == "__main__":
    asyncio.run(main())
