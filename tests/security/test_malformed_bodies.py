"""Malformed bodies answer in the JSON error format: JSON nested too deeply (HTTP and
websockets), a body over the cap from a client that does not wait for `100-continue`,
and a subscription sent as a plain HTTP POST."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from documents.database import Database
from tests.security.conftest import post
from tests.security.test_websocket_frames import acknowledged, close_code, reply, subscribe
from tests.support.errors import body_without_request_id
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import RunningApp, StartApp

NESTED_100K = b"[" * 100_000 + b"]" * 100_000


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def too_deep(limit: int = 64) -> dict[str, Any]:
    return {
        "data": None,
        "errors": [
            {
                "message": f"JSON nested deeper than {limit} levels",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }


async def post_bytes(app: RunningApp, body: bytes) -> tuple[int, Any, str]:
    async with app.http.post(
        f"{app.base_url}/graphql", data=body, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json(), response.headers["X-Request-ID"]


async def test_a_deeply_nested_body_is_refused_with_400_in_the_error_format(
    start_app: StartApp,
) -> None:
    app = await start_app()
    status, body, request_id = await post_bytes(app, NESTED_100K)
    assert status == 400
    assert body_without_request_id(body, request_id) == too_deep()
    assert len(request_id) == 32
    # The server is fine afterwards.
    assert (await post(app)).body == {"data": {"__typename": "Query"}}


async def test_nesting_inside_the_variables_counts_and_the_limit_is_inclusive(
    start_app: StartApp,
) -> None:
    app = await start_app()
    query = "query ($x: [[Int]]) { __typename }"
    # The body object itself is one level, "variables" another, "x" the rest.
    at_limit = json.dumps({"query": query, "variables": {"x": nested(62)}}).encode()
    over = json.dumps({"query": query, "variables": {"x": nested(63)}}).encode()
    status, body, request_id = await post_bytes(app, over)
    assert (status, body_without_request_id(body, request_id)) == (400, too_deep())
    status, body, _ = await post_bytes(app, at_limit)
    # Decoded, so GraphQL judges it: a value of the wrong shape, not a transport error.
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_brackets_inside_strings_do_not_count(start_app: StartApp) -> None:
    app = await start_app()
    text = '"\\"' + "[" * 1000
    body = json.dumps({"query": "{ __typename }", "variables": {"s": text}}).encode()
    status, answer, _ = await post_bytes(app, body)
    assert (status, answer) == (200, {"data": {"__typename": "Query"}})


async def test_the_depth_limit_is_a_setting(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_MAX_JSON_DEPTH=3)
    body = json.dumps({"query": "{ __typename }", "variables": {"x": [[1]]}}).encode()
    status, answer, request_id = await post_bytes(app, body)
    assert (status, body_without_request_id(answer, request_id)) == (400, too_deep(3))


async def test_get_variables_nested_too_deeply_are_refused(start_app: StartApp) -> None:
    app = await start_app()
    async with app.http.get(
        f"{app.base_url}/graphql",
        params={"query": "{ __typename }", "variables": "[" * 5000 + "]" * 5000},
        headers={"Accept": "application/json"},
    ) as response:
        assert response.status == 400
        assert (
            body_without_request_id(await response.json(), response.headers["X-Request-ID"])
            == too_deep()
        )
        assert len(response.headers["X-Request-ID"]) == 32


async def test_a_deeply_nested_websocket_frame_closes_4400(start_app: StartApp) -> None:
    app = await start_app()
    ws = await acknowledged(app)
    await ws.send_str(NESTED_100K.decode())
    assert await close_code(ws) == 4400
    # A new connection works.
    ws = await acknowledged(app)
    await ws.send_json(subscribe("1"))
    assert (await reply(ws))["payload"] == {"data": {"__typename": "Query"}}
    await ws.close()


# --- a body over the cap, sent whole before reading -------------------------------------


def urllib_post(url: str, body: bytes) -> tuple[int, Any]:
    """Python's urllib sends the whole body (no `Expect: 100-continue`), then reads."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_a_client_sending_a_body_over_the_cap_whole_reads_the_413(
    start_app: StartApp,
) -> None:
    app = await start_app()
    limit = 8 * 1024 * 1024
    status, body = await asyncio.to_thread(urllib_post, f"{app.base_url}/graphql", b" " * 9_000_000)
    assert status == 413
    assert body_without_request_id(body) == {
        "data": None,
        "errors": [
            {
                "message": f"Request body too large: the limit is {limit} bytes",
                "extensions": {"code": "BAD_USER_INPUT", "limit": limit},
            }
        ],
    }


# --- a subscription over plain HTTP -----------------------------------------------------

CHAT_STREAM = """subscription {
  chatStream(input: {
    model: "openrouter:openai/gpt-4o-mini"
    messages: [{ role: USER, content: "hi" }]
    sessionId: "s1"
  }) { __typename }
}"""


async def test_a_subscription_over_a_plain_post_says_to_use_websockets_or_sse(
    start_app: StartApp, upstream: FakeUpstream, database: Database
) -> None:
    app = await start_app()
    await app.catalog_settled()  # the catalog's own start-up fetch and store are not ours
    catalog_calls = dict(upstream.calls)
    answer = await post(app, CHAT_STREAM)
    assert answer.status == 200
    assert body_without_request_id(answer.body, answer.headers["X-Request-ID"]) == {
        "data": None,
        "errors": [
            {
                "message": (
                    "Subscriptions run over websockets or Server-Sent Events: connect to "
                    "/graphql with the graphql-transport-ws protocol, or send the request "
                    "with `Accept: text/event-stream`"
                ),
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ],
    }
    assert dict(upstream.calls) == catalog_calls  # no chat reached the upstream
    # Nothing written for the request: only the catalog and the start-up's own state
    # (the usage-totals backfill marker) are there.
    for name in await database.db.list_collection_names():
        if name not in ("model_catalog", "usage_totals_state"):
            assert await database.db[name].count_documents({}) == 0, name
