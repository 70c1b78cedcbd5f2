"""A session's counters agree with its stored messages after any interleaving of saves
and deletes, or the session and its messages are both gone; its money is exact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128

from documents.database import Database
from tests.history.conftest import DELETE, HistoryClient

ROUNDS = 50
SAVES = 8


async def stored_state(database: Database, session_id: str) -> tuple[dict[str, Any] | None, int]:
    session = await database.db["chat_sessions"].find_one(
        {"userId": "alice", "sessionId": session_id}
    )
    count = await database.db["chat_messages"].count_documents(
        {"userId": "alice", "sessionId": session_id}
    )
    return session, count


async def test_interleaved_saves_and_deletes_leave_counters_equal_to_the_stored_messages(
    client: HistoryClient, database: Database
) -> None:
    counts = set()
    listed: dict[str, int] = {}
    for round in range(ROUNDS):
        sid = f"race-{round}"
        await client.save(sid, "first", cost=0.5)
        saves = [client.save(sid, f"m{i}", cost=0.5) for i in range(SAVES)]
        # The delete lands somewhere among the saves: a different place each round.
        delete = client.run(DELETE, {"sessionId": sid})
        results = await asyncio.gather(*saves[: round % SAVES], delete, *saves[round % SAVES :])
        assert all(not getattr(r, "errors", None) for r in results)

        session, count = await stored_state(database, sid)
        if session is None:
            assert count == 0, (round, count)
        else:
            assert session["messageCount"] == count, (round, session, count)
            assert session["totalCost"].to_decimal() == Decimal("0.5") * count
            assert not session.get("deleting")
        counts.add(count)
        listed[sid] = count
    # The check is only worth something if the delete really raced the saves: it
    # landed among them at different points, taking different numbers of messages.
    assert len(counts) > 1, counts
    # What the client reads agrees.
    page = await client.sessions(first=ROUNDS)
    assert {n["id"]: n["messageCount"] for n in page["nodes"]} == {
        sid: count for sid, count in listed.items() if count
    }


async def test_ten_saves_of_twenty_cents_total_exactly_two_dollars(
    client: HistoryClient, database: Database
) -> None:
    for i in range(10):
        await client.save("money", f"m{i}", cost=0.2)
    (node,) = (await client.sessions())["nodes"]
    assert node["totalCost"] == 2.0
    session, _ = await stored_state(database, "money")
    assert session is not None
    assert session["totalCost"] == Decimal128("2.0")
    message = await database.db["chat_messages"].find_one({"sessionId": "money"})
    assert message is not None and message["cost"] == Decimal128("0.2")


async def test_many_tiny_costs_sum_exactly(client: HistoryClient, database: Database) -> None:
    tiny = "0.000000123"
    for i in range(30):
        await client.save("tiny", f"m{i}", cost=float(tiny))
    session, _ = await stored_state(database, "tiny")
    assert session is not None
    assert session["totalCost"].to_decimal() == Decimal(tiny) * 30
    (node,) = (await client.sessions())["nodes"]
    assert node["totalCost"] == float(Decimal(tiny) * 30)


async def test_costs_stored_as_floats_by_an_older_version_still_read(
    client: HistoryClient, database: Database
) -> None:
    now = datetime.now(UTC)
    await database.db["chat_sessions"].insert_one(
        {
            "userId": "alice",
            "sessionId": "old",
            "title": "Old",
            "messageCount": 1,
            "lastMessage": "hi",
            "totalCost": 0.30000000000000004,
            "createdAt": now,
            "updatedAt": now,
        }
    )
    await database.db["chat_messages"].insert_one(
        {
            "userId": "alice",
            "sessionId": "old",
            "content": "hi",
            "isUser": True,
            "role": "user",
            "timestamp": now,
            "cost": 0.25,
            "createdAt": now,
        }
    )
    history = await client.history("old")
    assert [n["cost"] for n in history["nodes"]] == [0.25]
    await client.save("old", "more", cost=0.1)
    (node,) = (await client.sessions())["nodes"]
    assert node["messageCount"] == 2
    assert abs(node["totalCost"] - 0.4) < 1e-9
    # And it deletes completely, though it has no epoch.
    assert (await client.data(DELETE, {"sessionId": "old"}))["deleteChatSession"] is True
    assert await stored_state(database, "old") == (None, 0)
