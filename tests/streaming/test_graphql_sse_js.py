"""GraphQL over SSE with the reference `graphql-sse` JavaScript client (npm), as an Apollo
or urql app would use it: tests/js/sse_client.mjs runs one operation under the machine's
node and prints what the client delivered.

Needs node and the client installed (`npm ci --prefix tests/js`, which `make test` runs
when npm is there); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from resolvers.identity.key_store import ApiKeyStore
from tests.streaming.conftest import CHAT_STREAM, MISTRAL_UPSTREAM, StreamApp
from tests.streaming.test_chat_stream import _assert_partial_kept, chat_input
from tests.support.fake_upstream import FakeUpstream, Stall, Text, answer, steps
from tests.support.server import RunningApp

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "sse_client.mjs"
NODE = shutil.which("node")
CLIENT_INSTALLED = (JS_DIR / "node_modules" / "graphql-sse" / "package.json").is_file()
RUN_TIMEOUT = 30.0

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(
        not CLIENT_INSTALLED,
        reason="the graphql-sse client is not installed: run `npm ci --prefix tests/js`",
    ),
]


async def graphql_sse(app: RunningApp, query: str, **spec: Any) -> dict[str, Any]:
    """What the reference client delivered for one operation (see sse_client.mjs)."""
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        json.dumps({"url": f"{app.base_url}/graphql", "query": query, **spec}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT)
    assert process.returncode == 0, err.decode()
    seen: dict[str, Any] = json.loads(out)
    return seen


def chat_events(seen: dict[str, Any]) -> list[dict[str, Any]]:
    assert all("errors" not in result for result in seen["results"]), seen
    return [result["data"]["chatStream"] for result in seen["results"]]


async def test_the_reference_client_streams_a_chat_answer(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hel", "lo", " from", " SSE"))
    app = await stream_app()

    seen = await graphql_sse(app, CHAT_STREAM, variables=chat_input())

    assert seen["completed"] is True
    events = chat_events(seen)
    deltas = events[:-1]
    # Pieces that arrive together while the client reads may be merged into one delta.
    assert "".join(d["content"] for d in deltas) == "Hello from SSE"
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    assert events[-1]["__typename"] == "ChatCompleted"
    assert events[-1]["content"] == "Hello from SSE"


async def test_the_reference_client_runs_a_query_and_reads_graphql_errors(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    app = await stream_app()

    query = await graphql_sse(app, "{ __typename }")
    assert query == {"results": [{"data": {"__typename": "Query"}}], "completed": True}

    refused = await graphql_sse(
        app, CHAT_STREAM, variables=chat_input(model="openrouter:nobody/no-such-model")
    )
    assert refused["completed"] is True
    (result,) = refused["results"]
    (error,) = result["errors"]
    assert error["extensions"]["code"] == "MODEL_NOT_FOUND"
    assert error["extensions"]["requestId"]
    assert sse.chats == []


async def test_the_reference_client_signs_in_with_its_headers(
    sse: FakeUpstream, stream_app: StreamApp, database: Any
) -> None:
    key = (await ApiKeyStore(database).create(user_id="alice")).key
    sse.script(MISTRAL_UPSTREAM, answer("for alice"))
    app = await stream_app(AIPASTA_AUTH="required")

    anonymous = await graphql_sse(app, CHAT_STREAM, variables=chat_input())
    (result,) = anonymous["results"]
    assert [e["extensions"]["code"] for e in result["errors"]] == ["UNAUTHENTICATED"]
    assert sse.chats == []

    signed_in = await graphql_sse(
        app, CHAT_STREAM, variables=chat_input(), headers={"Authorization": f"Bearer {key}"}
    )
    assert chat_events(signed_in)[-1]["content"] == "for alice"


async def test_the_reference_client_sees_a_429_with_retry_after(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    app = await stream_app(AIPASTA_RATE_LIMIT="1/minute")

    assert (await graphql_sse(app, "{ __typename }"))["completed"] is True
    refused = await graphql_sse(app, "{ __typename }")

    error = refused["error"]
    assert error["status"] == 429
    assert 1 <= int(error["retryAfter"]) <= 60
    assert error["body"]["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


async def test_the_reference_client_stopping_closes_the_upstream_and_keeps_the_partial(
    sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial answer"), Stall()))
    app = await stream_app()

    seen = await graphql_sse(app, CHAT_STREAM, variables=chat_input(sessionId="s-js"), stopAfter=1)

    assert seen["completed"] is False
    assert [e["content"] for e in chat_events(seen)] == ["Partial answer"]
    await sse.chats[0].wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "s-js")
