"""GraphQL over SSE (graphql-sse, distinct connections mode) on /graphql, with a plain HTTP
client: the same streams, sign-in, limits, error format and cancellation as over a
websocket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from aipasta.edge.graphql_view import GatewayGraphQL
from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.run import RunResult
from resolvers.identity.key_store import ApiKeyStore
from tests.streaming.conftest import (
    CHAT,
    CHAT_STREAM,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    Outcome,
    StreamApp,
    history,
    saved_answer,
)
from tests.streaming.graphql_sse import EVENT_STREAM, SSEOperation, sse_operation, sse_run
from tests.streaming.test_chat_stream import _assert_partial_kept, chat_input, lockstep
from tests.support.errors import without_request_id
from tests.support.fake_upstream import (
    FakeUpstream,
    Finish,
    Stall,
    StreamError,
    Text,
    Wait,
    answer,
    steps,
)
from tests.support.server import slow_reader_connection

WsClient = Any


# --- streaming ------------------------------------------------------------------------


async def test_a_chat_stream_arrives_as_next_events_then_complete(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    pieces = ["Hel", "lo, ", "wor", "ld!"]
    gates, script = lockstep(pieces)
    sse.script(MISTRAL_UPSTREAM, steps(*script, Finish(12, 4, cost=0.00012)))
    app = await stream_app()

    async with sse_operation(app, CHAT_STREAM, chat_input(sessionId="s-sse")) as operation:
        response = operation.response
        assert response.status == 200
        assert response.content_type == EVENT_STREAM
        assert response.headers["Cache-Control"] == "no-cache, no-transform"
        assert response.headers["X-Request-ID"]
        outcome = Outcome()
        for gate in gates:
            event = await operation.event(outcome)
            assert event is not None and event["__typename"] == "ChatDelta"
            gate.set()  # each delta is sent as it comes, not at the end
        await operation.finish(outcome)

    assert outcome.completed and outcome.errors == []
    assert [d["content"] for d in outcome.deltas] == pieces
    assert [d["index"] for d in outcome.deltas] == [0, 1, 2, 3]
    (completed,) = outcome.terminals
    assert completed["__typename"] == "ChatCompleted"
    assert completed["content"] == "Hello, world!"
    assert completed["usage"]["totalTokens"] == 16
    assert completed["cost"]["totalCost"] == 0.00012
    _, reply = await history(app, "s-sse")
    assert (reply["content"], reply["status"]) == ("Hello, world!", "COMPLETE")
    assert completed["messageId"] == reply["id"]
    (call,) = sse.chats
    assert call.finished and not call.closed_by_client.is_set()


async def test_queries_and_mutations_send_one_result_then_complete(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Whole", " answer"))
    app = await stream_app()

    async with sse_operation(app, "{ __typename }") as operation:
        assert operation.streams
        assert await operation.results() == [{"data": {"__typename": "Query"}}]

    async with sse_operation(app, CHAT, chat_input()) as operation:
        (result,) = await operation.results()
    assert "errors" not in result
    assert result["data"]["chat"]["message"] == {"role": "ASSISTANT", "content": "Whole answer"}

    # graphql-sse also allows GET, the operation in the query string.
    async with app.http.get(
        f"{app.base_url}/graphql",
        params={"query": "{ __typename }"},
        headers={"Accept": EVENT_STREAM},
    ) as response:
        assert response.content_type == EVENT_STREAM
        assert await SSEOperation(response).results() == [{"data": {"__typename": "Query"}}]


async def test_a_subscription_in_a_plain_json_post_is_still_refused(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    app = await stream_app()
    body = await app.graphql(CHAT_STREAM, chat_input())
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "text/event-stream" in error["message"]
    assert sse.chats == []


# --- errors ---------------------------------------------------------------------------


async def test_an_upstream_error_mid_stream_is_a_chat_failed_event(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(
        MISTRAL_UPSTREAM,
        steps(Text("Hello"), Text(" wor"), StreamError(502, "Provider returned error")),
    )
    app = await stream_app()

    outcome = await sse_run(app, CHAT_STREAM, chat_input())

    assert outcome.completed and outcome.errors == []
    assert "".join(d["content"] for d in outcome.deltas) == "Hello wor"
    (failed,) = outcome.terminals
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_UNAVAILABLE"
    assert failed["partialContent"] == "Hello wor"


async def test_graphql_errors_carry_their_code_and_the_request_id(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    app = await stream_app()

    async with sse_operation(
        app, CHAT_STREAM, chat_input(model="openrouter:nobody/no-such-model")
    ) as operation:
        request_id = operation.response.headers["X-Request-ID"]
        outcome = await operation.finish()

    assert outcome.completed and outcome.events == []
    (error,) = outcome.errors
    assert without_request_id(error["extensions"], request_id)["code"] == "MODEL_NOT_FOUND"
    assert sse.chats == []

    # A document that does not validate: one `next` with the error, then `complete`.
    async with sse_operation(app, "subscription { nope }") as operation:
        (result,) = await operation.results()
    assert [e["extensions"]["code"] for e in result["errors"]] == ["BAD_USER_INPUT"]


async def test_an_unexpected_error_mid_stream_is_masked_as_internal(
    sse: FakeUpstream, stream_app: StreamApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("fine"))

    async def broken(self: ExchangeWriter, result: RunResult) -> str | None:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(ExchangeWriter, "finish", broken)
    app = await stream_app()

    async with sse_operation(app, CHAT_STREAM, chat_input()) as operation:
        request_id = operation.response.headers["X-Request-ID"]
        outcome = await operation.finish()

    assert outcome.completed
    (error,) = outcome.errors
    assert without_request_id(error["extensions"], request_id) == {"code": "INTERNAL"}
    assert "secret detail" not in error["message"]


async def test_a_fault_outside_graphql_ends_the_stream_with_a_masked_error_event(
    sse: FakeUpstream, stream_app: StreamApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial"), Stall()))

    async def broken(self: GatewayGraphQL, request: Any, result: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(GatewayGraphQL, "process_result", broken)
    app = await stream_app()

    async with sse_operation(app, CHAT_STREAM, chat_input()) as operation:
        request_id = operation.response.headers["X-Request-ID"]
        outcome = await operation.finish()  # `complete` still ends it

    (error,) = outcome.errors
    assert without_request_id(error["extensions"], request_id) == {"code": "INTERNAL"}
    assert "secret detail" not in error["message"]
    await sse.chats[0].wait_closed(within=1.0)  # and its upstream is closed


# --- sign-in and limits ---------------------------------------------------------------


async def test_without_credentials_a_stream_is_unauthenticated(
    sse: FakeUpstream, stream_app: StreamApp, database: Any
) -> None:
    key = (await ApiKeyStore(database).create(user_id="alice")).key
    sse.script(MISTRAL_UPSTREAM, answer("for alice"))
    app = await stream_app(AIPASTA_AUTH="required")

    anonymous = await sse_run(app, CHAT_STREAM, chat_input())
    assert anonymous.completed and anonymous.events == []
    assert [e["extensions"]["code"] for e in anonymous.errors] == ["UNAUTHENTICATED"]

    refused = await sse_run(
        app, CHAT_STREAM, chat_input(), headers={"Authorization": "Bearer ap_not-a-key"}
    )
    assert [e["extensions"]["code"] for e in refused.errors] == ["UNAUTHENTICATED"]
    assert sse.chats == []

    signed_in = await sse_run(
        app, CHAT_STREAM, chat_input(), headers={"Authorization": f"Bearer {key}"}
    )
    assert signed_in.errors == []
    assert signed_in.terminals[-1]["content"] == "for alice"


async def test_over_the_limit_is_429_with_retry_after_in_the_budget_http_and_websockets_share(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.default(MISTRAL_UPSTREAM, answer("ok"))
    app = await stream_app(AIPASTA_RATE_LIMIT="3/minute")

    # One operation each way: plain HTTP, a websocket subscription, then SSE.
    assert (await app.graphql("{ __typename }"))["data"] == {"__typename": "Query"}
    ws: GraphQLWebSocket = await ws_client(app)
    assert (await ws.run(CHAT_STREAM, chat_input())).errors == []
    assert (await sse_run(app, CHAT_STREAM, chat_input())).errors == []

    async with sse_operation(app, CHAT_STREAM, chat_input()) as operation:
        response = operation.response
        assert response.status == 429
        assert not operation.streams
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        body = await response.json()
    (error,) = body["errors"]
    assert without_request_id(error["extensions"], response.headers["X-Request-ID"]) == {
        "code": "RATE_LIMITED",
        "retryAfter": retry_after,
        "limit": 3,
        "remaining": 0,
    }
    assert len(sse.chats) == 2  # the refused operation reached no upstream

    # The SSE operations counted against the websocket too.
    refused = await ws.run(CHAT_STREAM, chat_input())
    assert refused.rejected
    assert refused.errors[0]["extensions"]["code"] == "RATE_LIMITED"


async def test_the_stream_cap_counts_sse_and_websocket_streams_alike(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    gate = asyncio.Event()
    sse.script(MISTRAL_UPSTREAM, steps(Text("Hel"), Wait(gate), Text("lo"), Finish(3, 2)))
    app = await stream_app(AIPASTA_MAX_STREAMS_PER_USER=1)
    ws: GraphQLWebSocket = await ws_client(app)
    cap = {"code": "RATE_LIMITED", "retryAfter": 1, "limit": 1, "remaining": 0}

    async with sse_operation(app, CHAT_STREAM, chat_input()) as first:
        first_outcome = Outcome()
        delta = await first.event(first_outcome)
        assert delta is not None and delta["content"] == "Hel"

        second = await sse_run(app, CHAT_STREAM, chat_input())
        assert second.completed and second.events == []
        assert [without_request_id(e["extensions"]) for e in second.errors] == [cap]
        over_ws = await ws.run(CHAT_STREAM, chat_input())
        assert [without_request_id(e["extensions"]) for e in over_ws.errors] == [cap]
        assert len(sse.chats) == 1

        gate.set()
        await first.finish(first_outcome)
    assert first_outcome.errors == []
    assert first_outcome.terminals[-1]["__typename"] == "ChatCompleted"

    # The slot is free again once the stream has ended.
    sse.script(MISTRAL_UPSTREAM, answer("Hi"))
    third = await sse_run(app, CHAT_STREAM, chat_input())
    assert third.errors == [] and third.terminals[-1]["content"] == "Hi"


# --- the client going away ------------------------------------------------------------


async def test_a_client_closing_the_response_closes_the_upstream_and_keeps_the_partial(
    sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial "), Text("answer"), Stall()))
    app = await stream_app()

    async with sse_operation(app, CHAT_STREAM, chat_input(sessionId="s-gone")) as operation:
        outcome = Outcome()
        while "".join(d["content"] for d in outcome.deltas) != "Partial answer":
            assert await operation.event(outcome) is not None
        operation.response.close()  # drops the connection

    await sse.chats[0].wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "s-gone")
    services = app.state["services"]
    assert services.rate_limiter.open_streams_total == 0


async def test_a_client_that_stops_reading_is_let_go_after_the_send_timeout(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    piece = "0123456789abcdef" * 256  # 4 KiB
    # 40 MiB: far more than the buffers on the way hold (loopback's are megabytes).
    pieces = 40 * 1024 * 1024 // len(piece)
    sse.script(MISTRAL_UPSTREAM, steps(*[Text(piece)] * pieces, Finish(10, 1_000_000)))
    app = await stream_app(AIPASTA_STREAM_SEND_TIMEOUT=0.5)
    reader, writer = await slow_reader_connection(app)
    try:
        body = json.dumps(
            {"query": CHAT_STREAM, "variables": chat_input(sessionId="s-stalled")}
        ).encode()
        writer.write(
            b"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            b"Content-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

        # Given up on: the upstream request is closed unfinished, the partial answer kept.
        upstream = await sse.chat(0)
        await upstream.wait_closed(within=10)
        assert not upstream.finished
        _, reply = await saved_answer(app, "s-stalled")
        assert reply["status"] == "PARTIAL"
        assert 0 < len(reply["content"]) < len(piece) * pieces

        # Reading again, the client finds its stream cut short and the connection closed.
        async with asyncio.timeout(10):
            rest = b""
            while data := await reader.read(65536):
                rest += data
        assert rest.startswith(b"HTTP/1.1 200 ")
        assert b"event: complete" not in rest
        assert not rest.endswith(b"0\r\n\r\n")  # no last chunk: the body never ended
    finally:
        writer.transport.abort()
