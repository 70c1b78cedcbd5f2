"""A failed answer in history: the session keeps its last message, and the message
document says what went wrong (code and redacted message)."""

from __future__ import annotations

from tests.faults.conftest import (
    CHAT,
    MISTRAL_UPSTREAM,
    SESSIONS,
    FaultAppFactory,
    chat_input,
)
from tests.support.fake_upstream import FakeUpstream, answer, http_error

HISTORY = """
query History($sessionId: ID!) {
  chatHistory(sessionId: $sessionId) { nodes { content isUser status errorCode error } }
}
"""
SECRET = "sk-or-v1-test-secret"


async def test_failed_answer_keeps_last_message_and_stores_its_redacted_error(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    leak = f"overloaded, key {SECRET} is fine"
    raw.script(
        MISTRAL_UPSTREAM,
        answer("First", " answer"),
        http_error(503, leak),
        http_error(503, leak),
    )
    app = await fault_app()
    body = await app.graphql(CHAT, chat_input("Hi", sessionId="s1"))
    assert "errors" not in body, body

    error = await app.error(CHAT, chat_input("And then?", sessionId="s1"))
    assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"

    sessions = await app.graphql(SESSIONS)
    (session,) = sessions["data"]["chatSessions"]["nodes"]
    # Not blanked by the failed answer's empty text: the question stays the preview.
    assert session["lastMessage"] == "And then?"
    assert session["messageCount"] == 4
    history = await app.graphql(HISTORY, {"sessionId": "s1"})
    nodes = history["data"]["chatHistory"]["nodes"]
    assert [(n["isUser"], n["status"], n["errorCode"]) for n in nodes] == [
        (True, "COMPLETE", None),
        (False, "COMPLETE", None),
        (True, "COMPLETE", None),
        (False, "FAILED", "PROVIDER_UNAVAILABLE"),
    ]
    stored_error = nodes[3]["error"]
    assert stored_error == error["message"]
    assert SECRET not in stored_error
    assert nodes[3]["content"] == ""
