"""History query speed on a large collection: `chatHistory(last: 50)` and `chatSessions(first: 20)`.

Fills a fresh database on the embedded server (in a temporary folder) with `--messages`
messages: one user owns a session of `--session-messages` of them plus `--sessions - 1`
small sessions; the rest belong to other users. Then runs both queries through the real
schema (no HTTP) and prints p50/p95 in ms. Filling is the slow part (~5,000 messages/s).

    .venv/bin/python bench/history.py [--messages 100000] [--session-messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bson import ObjectId

from aipasta.embedded import EmbeddedMongo
from documents.database import Database
from documents.registry import document_models
from tests.conftest import make_settings
from tests.history.conftest import HISTORY, SESSIONS, HistoryClient, make_services

USER = "bench-user"
BIG = "big-session"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 5000


def message(user: str, session: str, at: datetime) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "userId": user,
        "sessionId": session,
        "content": "A message of ordinary length, saved from a chat. " * 4,
        "isUser": True,
        "role": "user",
        "model": None,
        "timestamp": at,
        "attachments": [],
        "status": "COMPLETE",
        "createdAt": at,
    }


def owner(i: int, args: argparse.Namespace) -> tuple[str, str]:
    if i < args.session_messages:
        return USER, BIG
    if i < args.session_messages + (args.sessions - 1) * 10:
        return USER, f"small-{i % (args.sessions - 1)}"
    return f"user-{i % 1000}", f"s-{i % 5000}"


async def fill(database: Database, args: argparse.Namespace) -> None:
    messages = database.db["chat_messages"]
    sessions: dict[tuple[str, str], dict[str, Any]] = {}
    batch: list[dict[str, Any]] = []
    for i in range(args.messages):
        user, session = owner(i, args)
        at = T0 + timedelta(seconds=i * 7)
        batch.append(message(user, session, at))
        summary = sessions.setdefault(
            (user, session),
            {
                "userId": user,
                "sessionId": session,
                "title": session,
                "messageCount": 0,
                "lastMessage": "...",
                "totalCost": 0.0,
                "createdAt": at,
                "updatedAt": at,
            },
        )
        summary["messageCount"] += 1
        summary["updatedAt"] = at
        if len(batch) == BATCH:
            await messages.insert_many(batch, ordered=False)
            batch = []
    if batch:
        await messages.insert_many(batch, ordered=False)
    await database.db["chat_sessions"].insert_many(list(sessions.values()), ordered=False)


async def timed(
    client: HistoryClient, query: str, variables: dict[str, Any], n: int
) -> tuple[list[float], list[str]]:
    times, errors = [], []
    for _ in range(n):
        started = time.perf_counter()
        result = await client.run(query, variables, user=USER)
        times.append((time.perf_counter() - started) * 1000)
        errors += [str((e.extensions or {}).get("code")) for e in result.errors or []]
    return times, errors


def report(name: str, measured: tuple[list[float], list[str]]) -> None:
    times, errors = measured
    p95 = statistics.quantiles(times, n=20)[-1] if len(times) >= 2 else times[0]
    failed = f"   {len(errors)} failed ({', '.join(sorted(set(errors)))})" if errors else ""
    print(f"{name:<36} p50 {statistics.median(times):8.1f} ms   p95 {p95:8.1f} ms{failed}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--session-messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=50, help="sessions of the bench user")
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        embedded = EmbeddedMongo(Path(folder) / "data")
        lease = await asyncio.to_thread(embedded.acquire)
        database = Database(lease.uri, db_name="bench", document_models=document_models())
        try:
            await database.start()
            started = time.perf_counter()
            await fill(database, args)
            print(f"filled {args.messages} messages in {time.perf_counter() - started:.0f} s")
            client = HistoryClient(make_services(make_settings(Path(folder)), database))
            page = await client.data(HISTORY, {"sessionId": BIG, "last": 50}, user=USER)
            cursor = page["chatHistory"]["pageInfo"]["startCursor"]
            report(
                f"chatHistory(last: 50) of {args.session_messages}",
                await timed(client, HISTORY, {"sessionId": BIG, "last": 50}, args.requests),
            )
            report(
                "chatHistory(last: 50, before: page)",
                await timed(
                    client, HISTORY, {"sessionId": BIG, "last": 50, "before": cursor}, args.requests
                ),
            )
            report(
                f"chatSessions(first: 20) of {args.sessions}",
                await timed(client, SESSIONS, {"first": 20}, args.requests),
            )
            together = await asyncio.gather(
                *(
                    timed(client, HISTORY, {"sessionId": BIG, "last": 50}, args.requests)
                    for _ in range(args.concurrency)
                )
            )
            report(
                f"chatHistory(last: 50) at {args.concurrency} at once",
                ([t for ts, _ in together for t in ts], [e for _, es in together for e in es]),
            )
        finally:
            await database.close()
            await asyncio.to_thread(embedded.release, lease)


if __name__ == "__main__":
    asyncio.run(main())
