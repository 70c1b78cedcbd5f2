"""Chat history while MongoDB is away: nothing a client asks for is INTERNAL, and no
answer the upstream produced (and was paid for) is lost.

The gateway starts with MONGODB_URI on a closed loopback port, so Beanie has never
initialised its documents; then a SecantusDB starts on that port, without restarting
the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.test_metrics import samples
from tests.faults.conftest import (
    CHAT,
    MISTRAL_UPSTREAM,
    SAVE,
    SESSIONS,
    DedicatedMongo,
    chat_input,
    launch,
)
from tests.faults.test_database_faults import db_env, until_connected
from tests.faults.test_upstream_faults import only_terminal, stream
from tests.streaming.conftest import wait_until
from tests.support.fake_upstream import FakeUpstream, answer

HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) { nodes { content isUser status model } }
}
"""


def save_input(content: str) -> dict[str, Any]:
    return {"input": {"sessionId": "s1", "content": content, "isUser": True}}


async def test_database_unreachable_at_start_answers_unavailable_and_keeps_every_answer(
    tmp_path: Path, raw: FakeUpstream, dedicated_mongo: DedicatedMongo
) -> None:
    raw.default(MISTRAL_UPSTREAM, answer("Still", " here"))
    async with launch(tmp_path, **db_env(dedicated_mongo, raw)) as app:
        # Every operation that needs the database says so, with its code.
        for query, variables in [(SAVE, save_input("lost")), (SESSIONS, None)]:
            error = await app.error(query, variables)
            assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE", error

        # The answers still reach the client; their copies wait for the database.
        body = await app.graphql(CHAT, chat_input("first question", sessionId="s1"))
        assert "errors" not in body, body
        assert body["data"]["chat"]["message"]["content"] == "Still here"
        assert body["data"]["chat"]["messageId"] is None
        outcome = await stream(app, chat_input("second question", sessionId="s1"))
        terminal = only_terminal(outcome)
        assert terminal["__typename"] == "ChatCompleted", terminal
        assert terminal["messageId"] is None
        assert "".join(d["content"] for d in outcome.deltas) == "Still here"
        backlog = app.services.history_backlog
        assert backlog.pending == 2
        # Operators see them waiting.
        async with app.http.get(f"{app.base_url}/metrics") as response:
            metrics = await response.text()
        assert samples(metrics)["aipasta_history_writes_pending"] == 2

        await dedicated_mongo.start()
        await until_connected(app)

        async def written() -> bool:
            return backlog.pending == 0

        await wait_until(written, within=30, every=0.1)
        assert backlog.dropped == 0 and backlog.rejected == 0
        body = await app.graphql(HISTORY, {"sessionId": "s1"})
        assert "errors" not in body, body
        # In order, each question above its answer; the refused save is not there.
        assert [(n["content"], n["isUser"]) for n in body["data"]["chatHistory"]["nodes"]] == [
            ("first question", True),
            ("Still here", False),
            ("second question", True),
            ("Still here", False),
        ]
        sessions = await app.graphql(SESSIONS)
        assert sessions["data"]["chatSessions"]["nodes"] == [
            {"id": "s1", "messageCount": 4, "lastMessage": "Still here"}
        ]
        saved = await app.graphql(SAVE, save_input("now it works"))
        assert "errors" not in saved, saved
