"""Depth, alias and token limits, batching off, and the per-operation timeout.

A refused operation must not run: every query here reads the model catalog, so a
resolver that ran would have counted a catalog read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.streaming.conftest import GraphQLWebSocket
from tests.support.errors import body_without_request_id, without_request_id
from tests.support.fake_upstream import FakeUpstream, Reply, fixture_json
from tests.support.server import RunningApp, StartApp

OPENROUTER = "/openrouter/models"


def catalog_calls(app: RunningApp) -> int:
    return app.catalog_reads


# Depth counts levels below the root field: modelCatalog is 0, stats 1, byProvider 2.
DEPTH_1 = "{ modelCatalog { cached } }"
DEPTH_2 = "{ modelCatalog { stats { total } } }"
DEPTH_3 = "{ modelCatalog { stats { byProvider { provider } } } }"


def refusal(body: dict[str, Any]) -> str:
    """The one error's message, after checking the operation was refused as bad input."""
    assert body.get("data") is None, body
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", body
    return str(error["message"])


@pytest.fixture
def limited(start_app: StartApp, catalog_upstream: FakeUpstream) -> StartApp:
    async def start(**overrides: Any) -> RunningApp:
        env: dict[str, Any] = {
            "AIPASTA_MAX_DEPTH": 2,
            "AIPASTA_MAX_ALIASES": 2,
            "AIPASTA_MAX_TOKENS": 40,
        }
        env.update(overrides)
        app = await start_app(**env)
        app.count_catalog_reads()
        return app

    return start


async def test_depth_at_the_limit_runs(limited: StartApp, catalog_upstream: FakeUpstream) -> None:
    app = await limited()
    body = await app.graphql(DEPTH_2)
    assert body["data"]["modelCatalog"]["stats"]["total"] == 11
    assert catalog_calls(app) == 1  # what the refused ones below must not do


async def test_depth_over_the_limit_is_refused_unexecuted(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    message = refusal(await app.graphql(DEPTH_3))
    assert message == "'anonymous' exceeds maximum operation depth of 2"
    assert catalog_calls(app) == 0


async def test_depth_counts_through_fragments(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    query = (
        "query Deep { modelCatalog { ...S } } "
        "fragment S on ModelCatalog { stats { byProvider { provider } } }"
    )
    assert refusal(await app.graphql(query)) == "'Deep' exceeds maximum operation depth of 2"
    assert catalog_calls(app) == 0


async def test_aliases_at_the_limit_run(limited: StartApp, catalog_upstream: FakeUpstream) -> None:
    app = await limited()
    body = await app.graphql("{ a: modelCatalog { cached } b: modelCatalog { cached } }")
    assert set(body["data"]) == {"a", "b"}


async def test_aliases_over_the_limit_are_refused_unexecuted(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    body = await app.graphql("{ a: modelCatalog { cached } b: health { status } c: __typename }")
    assert refusal(body) == "3 aliases found. Allowed: 2"
    assert catalog_calls(app) == 0


async def test_tokens_over_the_limit_are_refused_unexecuted(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    fields = " ".join(["cached"] * 40)
    message = refusal(await app.graphql(f"{{ modelCatalog {{ {fields} }} }}"))
    assert "Document contains more than 40 tokens" in message
    assert catalog_calls(app) == 0


async def test_comments_count_as_tokens(limited: StartApp, catalog_upstream: FakeUpstream) -> None:
    app = await limited()
    padding = "\n".join(["# padding"] * 50)
    message = refusal(await app.graphql(f"{padding}\n{{ modelCatalog {{ cached }} }}"))
    assert "Document contains more than 40 tokens" in message
    assert catalog_calls(app) == 0


async def test_limits_apply_over_websockets_too(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    ws = await GraphQLWebSocket.open(app)
    try:
        op = await ws.subscribe(DEPTH_3, {})
        answer = await ws.message(op)
        assert answer["type"] == "error", answer
        assert [e["extensions"]["code"] for e in answer["payload"]] == ["BAD_USER_INPUT"]
        # The connection stays usable.
        assert (await ws.message(await ws.subscribe("{ health { status } }", {})))["type"] == "next"
    finally:
        await ws.close()
    assert catalog_calls(app) == 0


# --- batching -----------------------------------------------------------------------


async def post_raw(app: RunningApp, body: object) -> tuple[int, Any]:
    async with app.http.post(f"{app.base_url}/graphql", json=body) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


async def test_a_batch_is_refused_with_400_in_the_error_format(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    status, body = await post_raw(app, [{"query": DEPTH_1}, {"query": DEPTH_1}])
    assert status == 400
    assert body_without_request_id(body) == {
        "data": None,
        "errors": [
            {"message": "Batching is not enabled", "extensions": {"code": "BAD_USER_INPUT"}}
        ],
    }
    assert catalog_calls(app) == 0


async def test_other_transport_errors_use_the_error_format(
    limited: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await limited()
    status, body = await post_raw(app, {"query": 42})
    assert status == 400
    assert without_request_id(body["errors"][0]["extensions"]) == {"code": "BAD_USER_INPUT"}
    assert "must be a string" in body["errors"][0]["message"]


# --- the operation timeout ------------------------------------------------------------


@pytest.fixture
async def held_catalog(upstream: FakeUpstream) -> AsyncIterator[asyncio.Event]:
    """OpenRouter's model list is held back until the test sets the event."""
    release = asyncio.Event()
    upstream.set(OPENROUTER, Reply(body=fixture_json("openrouter_models.json"), gate=release))
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    yield release
    release.set()  # lets the shielded catalog refresh end before the server stops


async def test_a_slow_query_is_cancelled_after_the_operation_timeout(
    start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_OPERATION_TIMEOUT=0.3)
    async with asyncio.timeout(10):  # bounded, far from the catalog's own 30 s timeout
        async with app.http.post(
            f"{app.base_url}/graphql", json={"query": "{ modelCatalog { cached } }"}
        ) as response:
            status, body = response.status, await response.json()
            request_id = response.headers["X-Request-ID"]
    assert status == 200
    assert body_without_request_id(body, request_id) == {
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
    assert len(request_id) == 32
    assert not held_catalog.is_set()  # the upstream was still holding the answer


async def test_websocket_operations_are_not_cut_by_the_http_timeout(
    start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_OPERATION_TIMEOUT=0.3)
    ws = await GraphQLWebSocket.open(app)
    try:
        streamed = await ws.subscribe("{ modelCatalog { stats { total } } }", {})
        # Started after the websocket operation, this one outlives the timeout first.
        timed_out = await app.graphql("{ modelCatalog { cached } }")
        assert timed_out["errors"][0]["extensions"]["details"]["reason"] == "TIMEOUT"
        held_catalog.set()
        answer = await ws.message(streamed)
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"]["modelCatalog"]["stats"]["total"] == 11
    finally:
        await ws.close()


async def test_a_timed_out_query_leaves_the_server_serving(
    start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_OPERATION_TIMEOUT=0.3)
    first = await app.graphql("{ modelCatalog { cached } }")
    assert first["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert (await app.graphql("{ health { status } }"))["data"]["health"]["status"] == "ok"
    held_catalog.set()
    again = await app.graphql("{ modelCatalog { stats { total } } }")
    assert again["data"]["modelCatalog"]["stats"]["total"] == 11
