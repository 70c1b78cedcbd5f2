"""MongoDB dying under a running gateway, and coming back, without restarting the app.

Each test runs its own SecantusDB process (data on disk, synced on commit) so it can
SIGKILL it and start it again on the same port. MongoDB down at start-up is covered in
tests/api/test_database_recovery.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from tests.faults.conftest import (
    CHAT,
    HEALTH,
    HISTORY,
    MISTRAL_UPSTREAM,
    SAVE,
    SESSIONS,
    DedicatedMongo,
    FaultApp,
    chat_input,
    launch,
    provider_env,
)
from tests.streaming.conftest import wait_until
from tests.support.fake_upstream import FakeUpstream, answer, http_error

DB_TIMEOUT_MS = 300
DB_OPERATION_TIMEOUT_MS = 2000
# Generous for a loaded CI machine, still far below pymongo's defaults (30 s).
MARGIN = 2.0
# Once the database is known to be down: well under the operation timeout.
FAST = DB_OPERATION_TIMEOUT_MS / 1000 / 2


def db_env(mongo: DedicatedMongo, raw: FakeUpstream) -> dict[str, Any]:
    return {
        **provider_env(raw),
        "MONGODB_URI": mongo.uri,
        "AIPASTA_DB_NAME": "faults",
        "AIPASTA_DB_TIMEOUT_MS": DB_TIMEOUT_MS,
        "AIPASTA_DB_OPERATION_TIMEOUT_MS": DB_OPERATION_TIMEOUT_MS,
        "AIPASTA_DB_RETRY_SECONDS": 0.1,
    }


async def timed_error(
    app: FaultApp, query: str, variables: dict[str, Any] | None = None
) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    error = await app.error(query, variables)
    return error, time.monotonic() - started


async def health(app: FaultApp) -> tuple[str, str]:
    status, body = await app.get("/health")
    assert status == 200
    return body["status"], body["services"]["database"]


async def until_connected(app: FaultApp) -> None:
    async def connected() -> bool:
        return await health(app) == ("ok", "connected")

    await wait_until(connected, within=30, every=0.1)


async def test_database_killed_mid_run_fails_fast_then_recovers_with_its_data(
    tmp_path: Path, raw: FakeUpstream, dedicated_mongo: DedicatedMongo
) -> None:
    await dedicated_mongo.start()
    async with launch(tmp_path, **db_env(dedicated_mongo, raw)) as app:
        saved = await app.graphql(
            SAVE, {"input": {"sessionId": "s1", "content": "before", "isUser": True}}
        )
        assert "errors" not in saved, saved
        before_id = saved["data"]["saveMessage"]["id"]
        assert await health(app) == ("ok", "connected")

        dedicated_mongo.kill()

        # The first operation finds the connection gone; it may wait for the operation
        # timeout, never for pymongo's 30 s defaults.
        error, elapsed = await timed_error(
            app, SAVE, {"input": {"sessionId": "s1", "content": "lost", "isUser": True}}
        )
        assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE"
        assert error["path"] == ["saveMessage"]
        assert elapsed < DB_OPERATION_TIMEOUT_MS / 1000 + MARGIN
        # From then on the database is known to be down: every call fails at once.
        for query, variables in [
            (SESSIONS, None),
            (SAVE, {"input": {"sessionId": "s1", "content": "lost too", "isUser": True}}),
            (HISTORY, {"sessionId": "s1"}),
        ]:
            error, elapsed = await timed_error(app, query, variables)
            assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error
            assert "Traceback" not in error["message"]
            assert elapsed < FAST
        assert await health(app) == ("degraded", "disconnected")
        body = await app.graphql(HEALTH)
        assert body["data"]["health"] == {
            "status": "degraded",
            "services": {"database": "disconnected"},
        }

        await dedicated_mongo.start()
        await until_connected(app)

        saved = await app.graphql(
            SAVE, {"input": {"sessionId": "s1", "content": "after", "isUser": True}}
        )
        assert "errors" not in saved, saved
        body = await app.graphql(HISTORY, {"sessionId": "s1"})
        assert "errors" not in body, body
        nodes = body["data"]["chatHistory"]["nodes"]
        # The message from before the crash survived; the refused ones were not stored.
        assert [n["content"] for n in nodes] == ["before", "after"]
        assert nodes[0]["id"] == before_id
        sessions = await app.graphql(SESSIONS)
        assert sessions["data"]["chatSessions"]["nodes"] == [
            {"id": "s1", "messageCount": 2, "lastMessage": "after"}
        ]


async def test_usage_recorded_while_the_database_was_down_is_written_when_it_is_back(
    tmp_path: Path, raw: FakeUpstream, dedicated_mongo: DedicatedMongo
) -> None:
    raw.default(MISTRAL_UPSTREAM, answer("Still", " here"))
    await dedicated_mongo.start()
    direct: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        dedicated_mongo.uri, serverSelectionTimeoutMS=2000
    )
    records = direct["faults"]["usage_records"]
    try:
        async with launch(tmp_path, **db_env(dedicated_mongo, raw)) as app:
            first = await app.graphql(CHAT, chat_input())
            assert "errors" not in first, first
            await app.services.usage.flush()
            assert await records.count_documents({}) == 1

            dedicated_mongo.kill()
            # Chat does not need MongoDB: every request is answered while it is away.
            answered = 0
            for i in range(6):
                body = await app.graphql(CHAT, chat_input(f"question {i}"))
                assert "errors" not in body, body
                assert body["data"]["chat"]["message"]["content"] == "Still here"
                answered += 1
            # A failed request leaves a record too.
            raw.script(MISTRAL_UPSTREAM, http_error(503, "busy"), http_error(503, "busy"))
            error = await app.error(CHAT, chat_input("doomed"))
            assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
            usage = app.services.usage
            assert usage.pending == answered + 1
            assert usage.dropped == 0

            await dedicated_mongo.start()

            async def all_written() -> bool:
                return usage.pending == 0 and await records.count_documents({}) >= 8

            await wait_until(all_written, within=30, every=0.1)
            stored = await records.find().sort("createdAt", 1).to_list()
            # Exactly once each: nothing lost, nothing written twice by a retried batch.
            assert len(stored) == 8
            assert len({r["requestId"] for r in stored}) == 8
            assert [(r["status"], r["errorCode"]) for r in stored] == [("complete", None)] * 7 + [
                ("failed", "PROVIDER_UNAVAILABLE")
            ]
            assert all(r["totalTokens"] == 15 for r in stored[:7])
            assert usage.dropped == 0 and usage.rejected == 0

            body = await app.graphql("{ usage { totalRequests } }")
            assert body["data"]["usage"]["totalRequests"] == 8
    finally:
        await direct.close()
