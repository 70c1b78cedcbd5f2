"""A token whose `sub` cannot be stored (a NUL, a lone surrogate) is an invalid
credential: UNAUTHENTICATED, nothing written, never INTERNAL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.test_websocket_credentials import signed_in
from tests.signin.conftest import make_jwt, make_nextauth
from tests.streaming.conftest import (
    CHAT,
    MISTRAL_UPSTREAM,
    StreamApp,
)
from tests.streaming.test_chat_stream import chat_input
from tests.support.fake_upstream import FakeUpstream, answer

SUBJECTS = {"nul": "alice\x00admin", "lone surrogate": "alice\ud800"}


@pytest.mark.parametrize("kind", ["jwt", "nextauth"])
@pytest.mark.parametrize("subject", SUBJECTS.values(), ids=SUBJECTS.keys())
async def test_unstorable_subject_is_unauthenticated_and_nothing_is_written(
    kind: str, subject: str, sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    sse.default(MISTRAL_UPSTREAM, answer("Hello"))
    # NextAuth's claims are JSON text: the subject goes in escaped, as JSON.stringify does.
    token = make_jwt(subject) if kind == "jwt" else make_nextauth(json.dumps(subject)[1:-1])
    app = await stream_app(**signed_in())

    body = await app.graphql(
        CHAT, chat_input(sessionId="s-sub"), headers={"Authorization": f"Bearer {token}"}
    )

    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["message"] == "token subject is not a valid user id"
    assert sse.chats == []
    for collection in ("chat_messages", "chat_sessions", "usage_records"):
        assert await store[collection].count_documents({}) == 0
