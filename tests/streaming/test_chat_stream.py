"""`chatStream` end to end: a real websocket (graphql-transport-ws) to the real app,
which streams from a fake OpenAI-compatible provider speaking SSE over loopback HTTP."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from bson import Decimal128

from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.run import RunResult
from tests.streaming.conftest import (
    CHAT_STREAM,
    GPT_MINI,
    GPT_MINI_UPSTREAM,
    MISTRAL,
    MISTRAL_UPSTREAM,
    USAGE,
    GraphQLWebSocket,
    Outcome,
    StreamApp,
    history,
    saved_answer,
    usage_records,
    user_says,
)
from tests.support.fake_upstream import (
    FakeUpstream,
    Finish,
    Stall,
    StreamError,
    Text,
    Wait,
    answer,
    http_error,
    steps,
)

WsClient = Any


def chat_input(model: str = MISTRAL, content: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"input": {"model": model, "messages": user_says(content), **extra}}


def assert_deltas_consecutive(outcome: Outcome, model: str) -> None:
    deltas = [e for e in outcome.deltas if e["model"] == model]
    assert [d["index"] for d in deltas] == list(range(len(deltas)))


def lockstep(pieces: list[str]) -> tuple[list[asyncio.Event], tuple[Text | Wait, ...]]:
    """A script that sends each piece only once the test has seen the previous one
    as a delta: every upstream chunk then reaches the gateway on its own."""
    gates = [asyncio.Event() for _ in pieces[1:]]
    script: list[Text | Wait] = [Text(pieces[0])]
    for gate, piece in zip(gates, pieces[1:], strict=True):
        script += [Wait(gate), Text(piece)]
    return gates, tuple(script)


# --- 1. the happy path --------------------------------------------------------------


async def test_one_delta_per_upstream_chunk_then_one_completed_with_reported_cost(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    pieces = ["Hel", "lo, ", "wor", "ld!"]
    gates, script = lockstep(pieces)
    sse.script(MISTRAL_UPSTREAM, steps(*script, Finish(12, 4, cost=0.00012)))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    op = await ws.subscribe(CHAT_STREAM, chat_input())
    outcome = Outcome()
    for gate in gates:
        event = await ws.event(op, outcome)
        assert event is not None and event["__typename"] == "ChatDelta"
        gate.set()
    await ws.finish(op, outcome)

    assert outcome.errors == []
    assert outcome.completed  # the server ended the operation with `complete`
    assert [d["content"] for d in outcome.deltas] == pieces
    assert_deltas_consecutive(outcome, MISTRAL)
    assert all(d["model"] == MISTRAL for d in outcome.deltas)
    assert len(outcome.terminals) == 1
    completed = outcome.events[-1]
    assert completed["__typename"] == "ChatCompleted"
    assert completed["content"] == "Hello, world!"
    assert completed["model"] == MISTRAL
    assert completed["provider"] == "openrouter"
    assert completed["finishReason"] == "stop"
    assert completed["usage"] == {
        "promptTokens": 12,
        "completionTokens": 4,
        "totalTokens": 16,
        "estimated": False,
    }
    # OpenRouter's own figure wins over the catalog price.
    assert completed["cost"]["totalCost"] == 0.00012
    assert completed["cost"]["known"] is True
    assert completed["latencyMs"] > 0
    assert 0 < completed["timeToFirstTokenMs"] <= completed["latencyMs"]
    assert completed["messageId"] is None  # no sessionId, nothing saved

    (call,) = sse.chats
    assert call.finished and not call.closed_by_client.is_set()
    assert call.provider == "openrouter"
    assert call.body["model"] == MISTRAL_UPSTREAM
    assert call.body["stream"] is True
    assert call.body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_without_a_reported_cost_the_catalog_price_is_charged_exactly(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hi", " there", prompt_tokens=12, completion_tokens=34))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input())

    completed = outcome.events[-1]
    assert completed["__typename"] == "ChatCompleted"
    # mistral-7b-instruct: 0.028 / 0.054 USD per million tokens.
    # 12 x 0.028e-6 = 3.36e-7; 34 x 0.054e-6 = 1.836e-6; exact total 2.172e-6 (the
    # float sum 3.36e-7 + 1.836e-6 would not be).
    assert completed["cost"] == {
        "inputCost": 3.36e-7,
        "outputCost": 1.836e-6,
        "totalCost": 2.172e-6,
        "known": True,
    }
    assert completed["usage"]["totalTokens"] == 46


async def test_a_coalescing_window_merges_a_burst_without_losing_text_or_indexes(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    burst = [f"w{i} " for i in range(20)]
    first_seen = asyncio.Event()
    sse.script(
        MISTRAL_UPSTREAM,
        steps(Text("First. "), Wait(first_seen), *(Text(p) for p in burst), Finish(5, 21)),
    )
    app = await stream_app(AIPASTA_STREAM_COALESCE_MS=1000)
    ws: GraphQLWebSocket = await ws_client(app)

    op = await ws.subscribe(CHAT_STREAM, chat_input())
    outcome = Outcome()
    first = await ws.event(op, outcome)
    # The first piece is not held back for the window.
    assert first == {"__typename": "ChatDelta", "model": MISTRAL, "content": "First. ", "index": 0}
    first_seen.set()
    await ws.finish(op, outcome)

    assert outcome.completed and outcome.errors == []
    # 21 upstream chunks, far fewer deltas: the burst arrived inside one window.
    assert 2 <= len(outcome.deltas) <= 3
    assert_deltas_consecutive(outcome, MISTRAL)
    text = "".join(d["content"] for d in outcome.deltas)
    assert text == "First. " + "".join(burst)
    assert outcome.events[-1]["__typename"] == "ChatCompleted"
    assert outcome.events[-1]["content"] == text


# --- 2. and 3. what is stored -------------------------------------------------------


async def test_with_a_session_the_exchange_is_saved_and_usage_recorded(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Bonjour", " !", prompt_tokens=7, completion_tokens=3))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input(content="Say hi in French", sessionId="s-1"))

    completed = outcome.events[-1]
    assert completed["__typename"] == "ChatCompleted"
    # 7 x 0.028e-6 + 3 x 0.054e-6, exactly.
    assert completed["cost"]["totalCost"] == 3.58e-7
    question, reply = await history(app, "s-1")
    assert question["isUser"] is True
    assert question["content"] == "Say hi in French"
    assert question["role"] == "USER"
    assert reply["isUser"] is False
    assert reply["role"] == "ASSISTANT"
    assert reply["content"] == "Bonjour !"
    assert reply["status"] == "COMPLETE"
    assert reply["model"] == MISTRAL
    assert reply["cost"] == 3.58e-7
    assert completed["messageId"] == reply["id"]

    (record,) = await usage_records(store)
    assert record["userId"] == "local"
    assert record["model"] == MISTRAL
    assert record["provider"] == "openrouter"
    assert (record["promptTokens"], record["completionTokens"], record["totalTokens"]) == (7, 3, 10)
    assert record["estimated"] is False
    assert record["cost"] == Decimal128(Decimal("0.000000358"))
    assert record["costKnown"] is True
    assert record["status"] == "complete"
    assert record["errorCode"] is None
    assert record["timeToFirstTokenMs"] is not None

    report = await app.graphql(USAGE)
    assert report["data"]["usage"]["totalRequests"] == 1
    assert report["data"]["usage"]["rows"] == [{"key": MISTRAL, "requests": 1, "failedRequests": 0}]


# --- 4. and 5. the client going away -------------------------------------------------


async def _stream_until_partial(
    sse: FakeUpstream, ws: GraphQLWebSocket, session_id: str
) -> tuple[str, Outcome]:
    """Start a stream whose upstream sends "Partial answer" then waits forever."""
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial "), Text("answer"), Stall()))
    op = await ws.subscribe(CHAT_STREAM, chat_input(sessionId=session_id))
    outcome = Outcome()
    while "".join(d["content"] for d in outcome.deltas) != "Partial answer":
        assert await ws.event(op, outcome) is not None
    return op, outcome


async def _assert_partial_kept(app: Any, store: Any, session_id: str) -> None:
    question, reply = await saved_answer(app, session_id)
    assert question["isUser"] is True
    assert reply["content"] == "Partial answer"
    assert reply["status"] == "PARTIAL"
    assert reply["model"] == MISTRAL
    (record,) = await usage_records(store)
    assert record["status"] == "cancelled"
    assert record["model"] == MISTRAL
    # No usage chunk arrived: counts are the gateway's estimate, and still charged.
    assert record["estimated"] is True
    assert record["completionTokens"] > 0
    assert record["costKnown"] is True


async def test_client_complete_mid_stream_abandons_upstream_and_keeps_the_partial_answer(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient, store: Any
) -> None:
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)
    op, _ = await _stream_until_partial(sse, ws, "s-cancel")

    await ws.complete(op)

    await sse.chats[0].wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "s-cancel")

    # The socket is still usable: a second subscription on it streams a whole answer.
    sse.script(MISTRAL_UPSTREAM, answer("Again"))
    second = await ws.run(CHAT_STREAM, chat_input())
    assert second.completed and second.errors == []
    assert [e["__typename"] for e in second.events] == ["ChatDelta", "ChatCompleted"]
    assert second.events[-1]["content"] == "Again"
    # Nothing more was sent for the operation the client completed.
    assert ws.unread(op) == []
    # Two subscriptions on one socket are two requests in the usage records.
    cancelled, complete = await usage_records(store, count=2)
    assert (cancelled["status"], complete["status"]) == ("cancelled", "complete")
    assert cancelled["requestId"] != complete["requestId"]


async def test_client_disconnect_mid_stream_abandons_upstream_and_keeps_the_partial_answer(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient, store: Any
) -> None:
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)
    await _stream_until_partial(sse, ws, "s-gone")

    await ws.close()

    await sse.chats[0].wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "s-gone")


# --- 6. failing before the first token ----------------------------------------------


async def test_rate_limited_twice_is_retried_then_the_fallback_answers(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(429, "slow down"), http_error(429, "slow down, again"))
    sse.script(GPT_MINI_UPSTREAM, answer("From ", "the fallback"))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input(fallbacks=[GPT_MINI]))

    assert outcome.completed and outcome.errors == []
    completed = outcome.events[-1]
    assert completed["__typename"] == "ChatCompleted"
    assert completed["model"] == GPT_MINI
    assert completed["content"] == "From the fallback"
    assert all(d["model"] == GPT_MINI for d in outcome.deltas)
    assert_deltas_consecutive(outcome, GPT_MINI)
    assert [c.model for c in sse.chats] == [MISTRAL_UPSTREAM, MISTRAL_UPSTREAM, GPT_MINI_UPSTREAM]


async def test_insufficient_credits_without_fallback_fails_without_retrying(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(402, "Insufficient credits"))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input())

    # Observed: a ChatFailed event (not a GraphQL error), then `complete`.
    assert outcome.completed and outcome.errors == []
    (failed,) = outcome.events
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "INSUFFICIENT_CREDITS"
    assert failed["model"] == MISTRAL
    assert failed["retryable"] is False
    assert failed["partialContent"] == ""
    assert len(sse.chats) == 1  # a 402 is not worth retrying


# --- 7. and 8. failing after the first token ----------------------------------------


async def test_in_stream_error_after_tokens_fails_with_the_partial_content_saved(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(
        MISTRAL_UPSTREAM,
        steps(Text("Hello"), Text(" wor"), StreamError(502, "Provider returned error")),
    )
    sse.default(MISTRAL_UPSTREAM, answer("must not be asked twice"))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input(sessionId="s-err"))

    assert outcome.completed and outcome.errors == []
    assert "".join(d["content"] for d in outcome.deltas) == "Hello wor"
    assert_deltas_consecutive(outcome, MISTRAL)
    assert len(outcome.terminals) == 1
    failed = outcome.events[-1]
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_UNAVAILABLE"
    assert failed["partialContent"] == "Hello wor"
    assert failed["retryable"] is True
    assert "Provider returned error" in failed["message"]
    # Part of an answer was shown: no retry, no fallback.
    assert len(sse.chats) == 1

    _, reply = await history(app, "s-err")
    assert reply["content"] == "Hello wor"
    assert reply["status"] == "PARTIAL"
    assert failed["messageId"] == reply["id"]


async def test_a_stall_mid_stream_times_out_with_the_partial_content(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Slow"), Stall()))
    app = await stream_app(AIPASTA_CHAT_IDLE_TIMEOUT=0.3)
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input())

    assert outcome.completed and outcome.errors == []
    assert [d["content"] for d in outcome.deltas] == ["Slow"]
    failed = outcome.events[-1]
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_TIMEOUT"
    assert failed["partialContent"] == "Slow"
    await sse.chats[0].wait_closed(within=1.0)


# --- 9. refused before any upstream call --------------------------------------------


async def test_unknown_model_is_refused_before_any_upstream_call(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input(model="openrouter:nobody/no-such-model"))

    # Observed: a `next` whose payload carries the GraphQL error, then `complete`.
    assert outcome.completed and not outcome.rejected
    assert outcome.events == []
    assert [e["extensions"]["code"] for e in outcome.errors] == ["MODEL_NOT_FOUND"]
    assert sse.chats == []

    # The connection survives the refusal.
    sse.script(MISTRAL_UPSTREAM, answer("fine"))
    after = await ws.run(CHAT_STREAM, chat_input())
    assert after.events[-1]["content"] == "fine"


async def test_an_unexpected_error_mid_stream_is_masked_as_internal(
    sse: FakeUpstream,
    stream_app: StreamApp,
    ws_client: WsClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("fine"))

    async def broken(self: ExchangeWriter, result: RunResult) -> str | None:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(ExchangeWriter, "finish", broken)
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(CHAT_STREAM, chat_input())

    assert outcome.completed
    (error,) = outcome.errors
    assert error.get("extensions", {}).get("code") == "INTERNAL"
    assert "secret detail" not in error["message"]
