"""Websockets: one subprotocol, an origin check, the init timeout, malformed frames
closing with 4400, and the per-connection and rate limits on `subscribe`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from aipasta.edge.ws_protocol import frame_problem
from tests.support.errors import without_request_id
from tests.support.fake_upstream import FakeUpstream, Reply, fixture_json
from tests.support.server import RunningApp, StartApp

WS_PROTOCOL = "graphql-transport-ws"
RECEIVE_TIMEOUT = 5.0
TYPENAME = {"query": "{ __typename }"}


async def connect(
    app: RunningApp, *, protocol: str = WS_PROTOCOL, headers: dict[str, str] | None = None
) -> aiohttp.ClientWebSocketResponse:
    return await app.http.ws_connect(
        f"{app.base_url}/graphql", protocols=(protocol,), headers=headers
    )


async def acknowledged(app: RunningApp, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    ws = await connect(app, **kwargs)
    await ws.send_json({"type": "connection_init"})
    assert (await ws.receive_json(timeout=RECEIVE_TIMEOUT)) == {"type": "connection_ack"}
    return ws


async def close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The close code, asserting the close is the very next thing the server sends."""
    message = await ws.receive(timeout=RECEIVE_TIMEOUT)
    assert message.type in {aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED}, message
    return ws.close_code


async def reply(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    received: dict[str, Any] = await ws.receive_json(timeout=RECEIVE_TIMEOUT)
    return received


def subscribe(op_id: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": op_id, "type": "subscribe", "payload": payload or TYPENAME}


@pytest.fixture
async def app(start_app: StartApp, catalog_upstream: FakeUpstream) -> RunningApp:
    return await start_app()


# --- the handshake ----------------------------------------------------------------------


async def test_a_well_formed_session_works(app: RunningApp) -> None:
    ws = await acknowledged(app)
    await ws.send_json(subscribe("1"))
    assert await reply(ws) == {
        "id": "1",
        "type": "next",
        "payload": {"data": {"__typename": "Query"}},
    }
    assert await reply(ws) == {"id": "1", "type": "complete"}
    await ws.send_json({"type": "ping", "payload": {"any": "thing"}})
    assert await reply(ws) == {"type": "pong"}
    await ws.close()


async def test_legacy_graphql_ws_subprotocol_is_refused(app: RunningApp) -> None:
    ws = await connect(app, protocol="graphql-ws")
    assert ws.protocol is None  # not agreed
    assert await close_code(ws) == 4406


async def test_connection_init_must_come_within_the_timeout(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_WS_INIT_TIMEOUT=0.2)
    ws = await connect(app)
    assert await close_code(ws) == 4408


async def test_a_disallowed_origin_is_refused_before_the_handshake(app: RunningApp) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(app, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:3000"])
async def test_an_allowed_origin_is_accepted(app: RunningApp, origin: str) -> None:
    ws = await acknowledged(app, headers={"Origin": origin})
    await ws.close()


async def test_the_allowed_origins_come_from_the_setting(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_CORS_ORIGINS="https://chat.example.com")
    ws = await acknowledged(app, headers={"Origin": "https://chat.example.com"})
    await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(app, headers={"Origin": "http://localhost:3000"})
    assert refused.value.status == 403


# --- malformed frames -------------------------------------------------------------------

BEFORE_ACK: list[tuple[str, str]] = [
    # Valid JSON that is not an object: Strawberry raised TypeError here (close 1006).
    ("list", "[1]"),
    ("string", '"x"'),
    ("null", "null"),
    ("number", "3"),
    ("not JSON", "{"),
    ("no type", "{}"),
    ("type not a string", '{"type": 5}'),
    ("unknown type", '{"type": "hello"}'),
    ("server-only type", '{"type": "connection_ack"}'),
    ("init payload null", '{"type": "connection_init", "payload": null}'),
    ("init payload a list", '{"type": "connection_init", "payload": [1]}'),
    ("ping payload a number", '{"type": "ping", "payload": 5}'),
    ("pong payload null", '{"type": "pong", "payload": null}'),
]

AFTER_ACK: list[tuple[str, object]] = [
    ("subscribe without payload", {"id": "1", "type": "subscribe"}),
    ("subscribe payload null", {"id": "1", "type": "subscribe", "payload": None}),
    ("subscribe payload a string", {"id": "1", "type": "subscribe", "payload": "x"}),
    ("subscribe without query", {"id": "1", "type": "subscribe", "payload": {}}),
    ("subscribe query a number", subscribe("1", {"query": 5})),
    ("subscribe variables a list", subscribe("1", {**TYPENAME, "variables": [1]})),
    ("subscribe variables a string", subscribe("1", {**TYPENAME, "variables": "x"})),
    ("subscribe extensions a list", subscribe("1", {**TYPENAME, "extensions": []})),
    ("subscribe operationName a number", subscribe("1", {**TYPENAME, "operationName": 5})),
    ("subscribe without id", {"type": "subscribe", "payload": TYPENAME}),
    ("subscribe id a number", {**subscribe("1"), "id": 1}),
    ("subscribe id a list", {**subscribe("1"), "id": [1]}),
    ("subscribe id empty", subscribe("")),
    ("complete without id", {"type": "complete"}),
    ("complete id a list", {"type": "complete", "id": [1]}),
]


@pytest.mark.parametrize("frame", [pytest.param(frame, id=case) for case, frame in BEFORE_ACK])
async def test_malformed_frame_closes_4400(app: RunningApp, frame: str) -> None:
    ws = await connect(app)
    await ws.send_str(frame)
    assert await close_code(ws) == 4400


@pytest.mark.parametrize("frame", [pytest.param(frame, id=case) for case, frame in AFTER_ACK])
async def test_malformed_frame_after_ack_closes_4400_unexecuted(
    app: RunningApp, frame: object
) -> None:
    ws = await acknowledged(app)
    await ws.send_str(json.dumps(frame))
    assert await close_code(ws) == 4400  # and no `next` came first


async def test_a_binary_frame_closes_4400(app: RunningApp) -> None:
    ws = await acknowledged(app)
    await ws.send_bytes(json.dumps(subscribe("1")).encode())
    assert await close_code(ws) == 4400


async def test_a_malformed_subscribe_before_ack_is_still_4400(app: RunningApp) -> None:
    ws = await connect(app)
    await ws.send_json({"id": "1", "type": "subscribe", "payload": None})
    assert await close_code(ws) == 4400


async def test_a_wellformed_subscribe_before_ack_is_4401(app: RunningApp) -> None:
    ws = await connect(app)
    await ws.send_json(subscribe("1"))
    assert await close_code(ws) == 4401


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "connection_init"},
        {"type": "connection_init", "payload": {}},
        {"type": "ping"},
        {"type": "pong", "payload": {"x": 1}},
        {"type": "complete", "id": "7"},
        subscribe("a", {**TYPENAME, "variables": None, "operationName": None, "extensions": None}),
    ],
)
def test_wellformed_frames_pass(frame: dict[str, Any]) -> None:
    assert frame_problem(frame) is None


# --- limits on subscribe ----------------------------------------------------------------


@pytest.fixture
async def held_catalog(upstream: FakeUpstream) -> AsyncIterator[asyncio.Event]:
    """OpenRouter's model list is held back until the test sets the event, keeping
    catalog queries open."""
    release = asyncio.Event()
    upstream.set(
        "/openrouter/models", Reply(body=fixture_json("openrouter_models.json"), gate=release)
    )
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    yield release
    release.set()


async def test_operations_beyond_the_open_limit_are_refused_and_the_socket_stays(
    start_app: StartApp, held_catalog: asyncio.Event
) -> None:
    app = await start_app(AIPASTA_WS_MAX_OPERATIONS=2)
    ws = await acknowledged(app)
    slow = {"query": "{ modelCatalog { stats { total } } }"}
    await ws.send_json(subscribe("1", slow))
    await ws.send_json(subscribe("2", slow))
    await ws.send_json(subscribe("3", slow))
    refusal = await reply(ws)
    (refused_error,) = refusal["payload"]
    refused_error["extensions"] = without_request_id(refused_error["extensions"])
    assert refusal == {
        "id": "3",
        "type": "error",
        "payload": [
            {
                "message": (
                    "Too many operations open on this connection: at most 2; "
                    "complete one before starting another"
                ),
                "extensions": {"code": "RATE_LIMITED", "limit": 2, "remaining": 0},
            }
        ],
    }
    held_catalog.set()
    finished = [await reply(ws) for _ in range(4)]
    assert sorted((m["id"], m["type"]) for m in finished) == [
        ("1", "complete"),
        ("1", "next"),
        ("2", "complete"),
        ("2", "next"),
    ]
    await ws.send_json(subscribe("3"))  # room again: the id is free for reuse too
    assert (await reply(ws))["type"] == "next"
    await ws.close()


async def test_each_subscribe_is_rate_limited_and_the_socket_stays(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="2/minute")
    ws = await acknowledged(app)
    for op_id in ("1", "2"):
        await ws.send_json(subscribe(op_id))
        assert (await reply(ws))["type"] == "next"
        assert (await reply(ws))["type"] == "complete"
    await ws.send_json(subscribe("3"))
    refused = await reply(ws)
    assert refused["id"] == "3" and refused["type"] == "error"
    (error,) = refused["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["limit"] == 2 and error["extensions"]["remaining"] == 0
    assert 1 <= error["extensions"]["retryAfter"] <= 60
    assert set(without_request_id(error["extensions"])) == {
        "code",
        "retryAfter",
        "limit",
        "remaining",
    }
    assert "this address" in error["message"]
    await ws.send_json({"type": "ping"})
    assert await reply(ws) == {"type": "pong"}
    # The websocket spent the same per-address budget HTTP requests use.
    async with app.http.post(f"{app.base_url}/graphql", json=TYPENAME) as response:
        assert response.status == 429
    await ws.close()
