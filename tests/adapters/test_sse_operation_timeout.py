"""GraphQL over SSE and the REST adapters: a query or mutation gets the operation timeout
it gets over plain HTTP; subscriptions and whole chat answers keep their own (chat)
timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.adapters.conftest import call
from tests.streaming.conftest import CHAT, CHAT_STREAM, MISTRAL, MISTRAL_UPSTREAM, StreamApp
from tests.streaming.graphql_sse import sse_operation, sse_run
from tests.support.errors import body_without_request_id
from tests.support.fake_upstream import (
    FakeUpstream,
    Reply,
    Sleep,
    Text,
    fixture_json,
    steps,
)
from tests.support.server import StartApp

OPENROUTER = "/openrouter/models"


@pytest.fixture
async def held_catalog(upstream: FakeUpstream) -> AsyncIterator[asyncio.Event]:
    """OpenRouter's model list is held back until the test sets the event."""
    release = asyncio.Event()
    upstream.set(OPENROUTER, Reply(body=fixture_json("openrouter_models.json"), gate=release))
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    yield release
    release.set()  # lets the shielded catalog refresh end before the server stops


async def test_a_slow_query_over_sse_is_cancelled_after_the_operation_timeout(
    start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_OPERATION_TIMEOUT=0.3)
    async with asyncio.timeout(10):  # bounded, far from the catalog's own 30 s timeout
        async with sse_operation(app, "{ modelCatalog { cached } }") as operation:
            request_id = operation.response.headers["X-Request-ID"]
            (result,) = await operation.results()
    assert body_without_request_id(result, request_id) == {
        "data": None,
        "errors": [
            {
                "message": "The operation took longer than 0.3 s and was cancelled",
                "extensions": {
                    "code": "TIMEOUT",
                    "details": {"reason": "TIMEOUT", "timeoutSeconds": 0.3},
                },
            }
        ],
    }
    assert not held_catalog.is_set()  # the upstream was still holding the answer
    held_catalog.set()
    # The server goes on serving, over SSE too.
    async with sse_operation(app, "{ modelCatalog { stats { total } } }") as operation:
        (again,) = await operation.results()
    assert again["data"]["modelCatalog"]["stats"]["total"] == 11


async def test_subscriptions_and_whole_chat_answers_over_sse_outlast_it(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("slow "), Sleep(0.5), Text("answer")))
    sse.script(MISTRAL_UPSTREAM, steps(Text("slow "), Sleep(0.5), Text("stream")))
    app = await stream_app(AIPASTA_OPERATION_TIMEOUT=0.2)
    variables = {"input": {"model": MISTRAL, "messages": [{"role": "USER", "content": "hi"}]}}
    async with sse_operation(app, CHAT, variables) as operation:
        (result,) = await operation.results()
    assert "errors" not in result, result
    assert result["data"]["chat"]["message"]["content"] == "slow answer"
    outcome = await sse_run(app, CHAT_STREAM, variables)
    assert outcome.errors == []
    assert outcome.terminals[-1]["content"] == "slow stream"


async def test_the_rest_adapters_cut_a_slow_query_with_504_and_let_a_whole_answer_run(
    sse: FakeUpstream, start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_OPERATION_TIMEOUT=0.3)
    async with asyncio.timeout(10):
        status, headers, body = await call(app, "GET", "/api/models")
    assert status == 504
    assert "Retry-After" not in headers
    assert body == {
        "success": False,
        "error": "Request timed out",
        "details": "The operation took longer than 0.3 s and was cancelled",
        "code": "TIMEOUT",
    }
    async with asyncio.timeout(10):
        status, _, body = await call(app, "GET", "/v1/models")
    assert status == 504
    assert body["error"]["code"] == "timeout"
    held_catalog.set()
    await app.catalog_settled()
    sse.script(MISTRAL_UPSTREAM, steps(Text("slow "), Sleep(0.5), Text("answer")))
    status, _, body = await call(
        app,
        "POST",
        "/v1/chat/completions",
        json={"model": MISTRAL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "slow answer"
