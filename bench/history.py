"""History query speed on a large collection, with the database's CPU per query.

Fills a database on the embedded server with `bench/fill.py` (the data `make bench`
queries): `--messages` messages, `--session-messages` of them in one session of the bench
user, the rest in sessions of 100 shared by that user (one in ten) and 997 others. The
filled database is kept in `--cache-dir` (a 200k fill takes about a minute, 1M about
five) and copied for each run. Then runs the history queries through the real schema (no
HTTP, in this process) one after the other and prints, for each, p50/p95 latency, this
process's CPU per query (the gateway's share: schema, Beanie, pymongo) and the embedded
database process's CPU per query (from /proc). `cold` rows run with the store's read
hints forgotten, as the first query of a session after a start does.

`--stale-counters` first rewrites the bench user's session summaries the way an older
fill did (updatedAt = createdAt + messageCount seconds, far past the newest message):
data whose summary disagrees with its messages, as imported history may.

    .venv/bin/python bench/history.py [--messages 200000] [--session-messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fill import BIG_SESSION, fill
from procstat import cpu_seconds

from aipasta.embedded import EmbeddedMongo
from documents.database import Database
from documents.registry import document_models
from resolvers.history.fields import MESSAGE_CURSOR, encode_position

try:
    from resolvers.history.store import forget_read_hints
except ImportError:  # a version without read hints

    def forget_read_hints() -> None:
        pass


from tests.conftest import make_settings
from tests.history.conftest import (
    DELETE,
    HISTORY,
    SAVE,
    SESSIONS,
    HistoryClient,
    make_services,
)

USER = "bench-user"
DB_NAME = "bench"
FILL_VERSION = "history-v3"


async def _filled(args: argparse.Namespace, data: Path) -> None:
    """`data`/db filled: copied from the cache, else filled and kept there."""
    key = f"{FILL_VERSION}-{version('secantusdb')}-{args.messages}-{args.session_messages}"
    cached = args.cache_dir / key
    if cached.is_dir():
        await asyncio.to_thread(shutil.copytree, cached, data / "db")
        print(f"database copied from {cached}")
        return
    embedded = EmbeddedMongo(data)
    lease = await asyncio.to_thread(embedded.acquire)
    database = Database(lease.uri, db_name=DB_NAME, document_models=document_models())
    try:
        await database.start()  # creates the gateway's indexes before the fill
        filled = await asyncio.to_thread(
            fill,
            lease.uri,
            DB_NAME,
            user=USER,
            messages=args.messages,
            big_session=args.session_messages,
            usage_records=0,
        )
        print(
            f"filled {filled.messages} messages in {filled.sessions} sessions "
            f"in {filled.seconds:.0f} s"
        )
    finally:
        await database.close()
        await asyncio.to_thread(embedded.release, lease)
    partial = cached.with_name(cached.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    await asyncio.to_thread(shutil.copytree, data / "db", partial)
    partial.rename(cached)


async def _stale_counters(database: Database) -> None:
    sessions = database.db["chat_sessions"]
    async for doc in sessions.find({"userId": USER}):
        stale = doc["createdAt"] + timedelta(seconds=doc["messageCount"])
        await sessions.update_one({"_id": doc["_id"]}, {"$set": {"updatedAt": stale}})


class Bench:
    def __init__(self, client: HistoryClient, db_pid: int, requests: int) -> None:
        self.client = client
        self.db_pid = db_pid
        self.requests = requests

    async def measure(
        self,
        name: str,
        query: str,
        variables: dict[str, Any],
        *,
        cold: bool = False,
        before: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        times: list[float] = []
        errors: list[str] = []
        own = db = 0.0
        n = self.requests
        for _ in range(n):
            if before is not None:
                await before()
            if cold:
                forget_read_hints()
            own_started, db_started = time.process_time(), cpu_seconds(self.db_pid)
            started = time.perf_counter()
            result = await self.client.run(query, variables, user=USER)
            times.append((time.perf_counter() - started) * 1000)
            own += time.process_time() - own_started
            db += cpu_seconds(self.db_pid) - db_started
            errors += [str((e.extensions or {}).get("code")) for e in result.errors or []]
        self.report(name, times, errors, own / n, db / n)

    async def together(self, name: str, query: str, variables: dict[str, Any], n: int) -> None:
        """`n` clients at once, each sending its queries one after the other."""

        async def one() -> tuple[list[float], list[str]]:
            times, errors = [], []
            for _ in range(self.requests):
                started = time.perf_counter()
                result = await self.client.run(query, variables, user=USER)
                times.append((time.perf_counter() - started) * 1000)
                errors += [str((e.extensions or {}).get("code")) for e in result.errors or []]
            return times, errors

        own_started, db_started = time.process_time(), cpu_seconds(self.db_pid)
        runs = await asyncio.gather(*(one() for _ in range(n)))
        total = n * self.requests
        self.report(
            name,
            [t for times, _ in runs for t in times],
            [e for _, errors in runs for e in errors],
            (time.process_time() - own_started) / total,
            (cpu_seconds(self.db_pid) - db_started) / total,
        )

    @staticmethod
    def report(name: str, times: list[float], errors: list[str], own: float, db: float) -> None:
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
        failed = f"   {len(errors)} failed ({', '.join(sorted(set(errors)))})" if errors else ""
        print(
            f"{name:<52} p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms  "
            f"CPU/query: gateway {own * 1000:6.1f} ms, DB {db * 1000:6.1f} ms{failed}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--session-messages", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--stale-counters", action="store_true")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "aipasta-bench")
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        await _filled(args, data)
        embedded = EmbeddedMongo(data)
        lease = await asyncio.to_thread(embedded.acquire)
        database = Database(lease.uri, db_name=DB_NAME, document_models=document_models())
        try:
            await database.start()
            if args.stale_counters:
                await _stale_counters(database)
            client = HistoryClient(make_services(make_settings(Path(folder)), database))
            bench = Bench(client, lease.pid, args.requests)
            big = {"sessionId": BIG_SESSION, "last": 50}
            page = await client.data(HISTORY, big, user=USER)
            first = await client.data(SESSIONS, {"first": 20}, user=USER)
            middle = await database.db["chat_messages"].find_one(
                {
                    "userId": USER,
                    "sessionId": BIG_SESSION,
                    "timestamp": _middle_time(
                        await database.db["chat_sessions"].find_one(
                            {"userId": USER, "sessionId": BIG_SESSION}
                        ),
                        args.session_messages,
                    ),
                }
            )
            assert middle is not None
            deep = encode_position(MESSAGE_CURSOR, middle["timestamp"], middle["_id"])
            size = f"{args.session_messages} of {args.messages}"
            await bench.measure(f"chatHistory(last: 50), {size}", HISTORY, big)
            await bench.measure(f"chatHistory(last: 50) cold, {size}", HISTORY, big, cold=True)
            await bench.measure(
                "chatHistory(last: 50, before: 2nd page)",
                HISTORY,
                big | {"before": page["chatHistory"]["pageInfo"]["startCursor"]},
            )
            await bench.measure(
                "chatHistory(last: 50, before: middle)", HISTORY, big | {"before": deep}
            )
            await bench.measure(
                "chatHistory(last: 50) of a 100-message session",
                HISTORY,
                {"sessionId": "s-0", "last": 50},
            )
            await bench.together("chatHistory(last: 50), 5 clients at once", HISTORY, big, 5)
            await bench.measure("chatSessions(first: 20)", SESSIONS, {"first": 20})
            await bench.measure("chatSessions(first: 20) cold", SESSIONS, {"first": 20}, cold=True)
            await bench.measure(
                "chatSessions(first: 20, after: 1st page)",
                SESSIONS,
                {"first": 20, "after": first["chatSessions"]["pageInfo"]["endCursor"]},
            )
            await bench.measure(
                "saveMessage into the 20,000-message session",
                SAVE,
                {"input": {"sessionId": BIG_SESSION, "content": "one more", "isUser": True}},
            )
            small = await database.db["chat_sessions"].find_one(
                {"userId": USER, "sessionId": {"$ne": BIG_SESSION}}
            )
            assert small is not None

            async def copy_back() -> None:
                # The deleted session and its 100 messages, stored again.
                await database.db["chat_sessions"].replace_one(
                    {"_id": small["_id"]}, small, upsert=True
                )
                if not await database.db["chat_messages"].find_one(
                    {"userId": USER, "sessionId": small["sessionId"]}
                ):
                    await database.db["chat_messages"].insert_many(messages)

            messages = (
                await database.db["chat_messages"]
                .find({"userId": USER, "sessionId": small["sessionId"]})
                .to_list(None)
            )
            await bench.measure(
                "deleteChatSession of a 100-message session",
                DELETE,
                {"sessionId": small["sessionId"]},
                before=copy_back,
            )
        finally:
            await database.close()
            await asyncio.to_thread(embedded.release, lease)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _middle_time(session: dict[str, Any] | None, count: int) -> Any:
    assert session is not None
    return session["createdAt"] + timedelta(milliseconds=10 * (count // 2))


if __name__ == "__main__":
    asyncio.run(main())
