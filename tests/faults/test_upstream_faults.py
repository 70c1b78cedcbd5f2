"""Upstream faults as a client sees them: the exact error code, the partial answer, and
that the gateway let go of the broken connection and kept one usage record each."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.faults.conftest import (
    CHAT,
    HISTORY,
    MISTRAL,
    MISTRAL_UPSTREAM,
    UNLIMITED,
    FaultApp,
    FaultAppFactory,
    chat_input,
)
from tests.streaming.conftest import CHAT_STREAM, GraphQLWebSocket, Outcome
from tests.support.clocks import FakeClock
from tests.support.errors import without_request_id
from tests.support.fake_upstream import (
    End,
    FakeUpstream,
    Raw,
    Reply,
    Reset,
    Stall,
    Text,
    Wait,
    answer,
    fixture_json,
    hang,
    http_error,
    steps,
)
from tests.support.server import StartApp

# What must never reach a client: Python's own words for a crash.
LEAKS = ("Traceback", 'File "', "Error(", "JSONDecodeError", "Expecting ", "line 1 column")


def assert_no_internals(value: Any) -> None:
    text = json.dumps(value)
    for leak in LEAKS:
        assert leak not in text, (leak, value)


async def usage_records(app: FaultApp) -> list[dict[str, Any]]:
    """Every usage record, once the recorder wrote what it holds."""
    await app.services.usage.flush()
    assert app.services.usage.pending == 0
    database = app.services.database
    assert database is not None
    return await database.db["usage_records"].find().sort("createdAt", 1).to_list()


async def assert_connection_dropped(app: FaultApp, raw: FakeUpstream, index: int = 0) -> None:
    """The gateway closed the chat request's connection instead of keeping it."""
    await raw.chats[index].wait_closed(within=5)
    await raw.wait_for_connections(0)
    # Nothing checked out of the app's pool, and nothing broken put back into it.
    assert app.upstream_connections() == (0, 0)


async def stream(app: FaultApp, variables: dict[str, Any]) -> Outcome:
    ws = await GraphQLWebSocket.open(app)
    try:
        return await ws.run(CHAT_STREAM, variables)
    finally:
        await ws.close()


def content_of(outcome: Outcome) -> str:
    return "".join(d["content"] for d in outcome.deltas)


def only_terminal(outcome: Outcome) -> dict[str, Any]:
    assert outcome.completed, outcome
    assert outcome.errors == []
    (terminal,) = outcome.terminals
    assert outcome.events[-1] is terminal
    return terminal


# --- 1. no response headers at all ------------------------------------------------------


async def test_upstream_that_never_answers_is_a_timeout_and_its_connection_is_dropped(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    raw.script(MISTRAL_UPSTREAM, hang())
    app = await fault_app(AIPASTA_CHAT_FIRST_TOKEN_TIMEOUT=0.3)

    started = time.monotonic()
    error = await app.error(CHAT, chat_input())
    elapsed = time.monotonic() - started

    assert error["extensions"]["code"] == "PROVIDER_TIMEOUT"
    assert "did not start answering within 0.3s" in error["message"]
    assert_no_internals(error)
    assert elapsed < 0.3 + 5  # the first-token timeout, not the 60 s default
    assert len(raw.chats) == 1  # a timeout is not retried on the same model
    await assert_connection_dropped(app, raw)

    (record,) = await usage_records(app)
    assert (record["status"], record["errorCode"], record["totalTokens"]) == (
        "failed",
        "PROVIDER_TIMEOUT",
        0,
    )


# --- 2. silence between chunks ----------------------------------------------------------


async def test_stream_that_stalls_fails_with_its_partial_answer_saved(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    raw.script(MISTRAL_UPSTREAM, steps(Text("Hel"), Text("lo"), Stall()))
    app = await fault_app(AIPASTA_CHAT_IDLE_TIMEOUT=0.3)

    outcome = await stream(app, chat_input(sessionId="stalled"))

    assert content_of(outcome) == "Hello"
    failed = only_terminal(outcome)
    assert failed["__typename"] == "ChatFailed"
    assert (failed["code"], failed["partialContent"], failed["retryable"]) == (
        "PROVIDER_TIMEOUT",
        "Hello",
        True,
    )
    assert "stalled for more than 0.3s" in failed["message"]
    assert failed["messageId"] is not None
    assert len(raw.chats) == 1  # part of an answer was shown: no retry
    await assert_connection_dropped(app, raw)

    body = await app.graphql(HISTORY, {"sessionId": "stalled"})
    nodes = body["data"]["chatHistory"]["nodes"]
    assert [(n["isUser"], n["content"], n["status"]) for n in nodes] == [
        (True, "Say hello", "COMPLETE"),
        (False, "Hello", "PARTIAL"),
    ]
    assert nodes[1]["id"] == failed["messageId"]
    (record,) = await usage_records(app)
    assert (record["status"], record["errorCode"]) == ("partial", "PROVIDER_TIMEOUT")


# --- 3. connection reset in the middle of the answer ------------------------------------


async def test_reset_mid_stream_fails_with_partial_content_and_the_next_request_works(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    gate = asyncio.Event()
    raw.script(
        MISTRAL_UPSTREAM,
        steps(Text("Hel"), Text("lo"), Wait(gate), Reset()),
        answer("Fine", " again"),
    )
    app = await fault_app()
    ws = await GraphQLWebSocket.open(app)
    try:
        op = await ws.subscribe(CHAT_STREAM, chat_input())
        outcome = Outcome()
        while content_of(outcome) != "Hello":
            event = await ws.event(op, outcome)
            assert event is not None and event["__typename"] == "ChatDelta", outcome
        gate.set()  # only now, so the RST cannot overtake the bytes already sent
        await ws.finish(op, outcome)

        failed = only_terminal(outcome)
        assert failed["__typename"] == "ChatFailed"
        assert (failed["code"], failed["partialContent"]) == ("PROVIDER_UNAVAILABLE", "Hello")
        assert_no_internals(failed)
        assert len(raw.chats) == 1
        await raw.wait_for_connections(0)
        assert app.upstream_connections() == (0, 0)

        again = await ws.run(CHAT_STREAM, chat_input())
    finally:
        await ws.close()
    completed = only_terminal(again)
    assert completed["__typename"] == "ChatCompleted"
    assert completed["content"] == content_of(again) == "Fine again"
    assert len(raw.chats) == 2

    records = await usage_records(app)
    assert [(r["status"], r["errorCode"]) for r in records] == [
        ("partial", "PROVIDER_UNAVAILABLE"),
        ("complete", None),
    ]


# --- 4. a stream that is not what it should be ------------------------------------------

MALFORMED = [
    pytest.param(
        (Text("Hel"), Raw(b'data: {"choices": [{"delta": {"content": "lo"\n\n')),
        "Hel",
        "invalid JSON",
        id="data-line-not-json",
    ),
    pytest.param(
        (Raw(b"data: \x00\x8b\xff\xfe\x1f\x8b garbage \x07\n\n"),),
        "",
        "invalid JSON",
        id="garbage-bytes",
    ),
    pytest.param(
        (Text("Hel"), Raw(b"data: [1, 2, 3]\n\n")),
        "Hel",
        "not an object",
        id="json-not-an-object",
    ),
    pytest.param(
        (Raw(b'data: {"choices": "lots"}\n\n'),),
        "",
        "malformed `choices`",
        id="wrong-shape",
    ),
]


@pytest.mark.parametrize(("script", "partial", "why"), MALFORMED)
async def test_malformed_stream_is_a_provider_error_without_internals(
    raw: FakeUpstream,
    fault_app: FaultAppFactory,
    script: tuple[Text | Raw, ...],
    partial: str,
    why: str,
) -> None:
    # Stall after the bad bytes: the gateway, not the fake, must end the request.
    raw.script(MISTRAL_UPSTREAM, steps(*script, Stall()))
    app = await fault_app()

    outcome = await stream(app, chat_input())

    assert content_of(outcome) == partial
    failed = only_terminal(outcome)
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_ERROR"
    assert failed["retryable"] is False
    assert failed["partialContent"] == partial
    assert failed["message"].startswith("openrouter: ") and why in failed["message"]
    assert_no_internals(outcome.events)
    assert len(raw.chats) == 1  # a protocol error is not retried
    await assert_connection_dropped(app, raw)

    (record,) = await usage_records(app)
    assert record["errorCode"] == "PROVIDER_ERROR"
    assert record["status"] == ("partial" if partial else "failed")


async def test_malformed_answer_to_the_chat_mutation_is_a_bare_provider_error(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    raw.script(MISTRAL_UPSTREAM, steps(Raw(b"data: {{{\xff\n\n"), Stall()))
    app = await fault_app()
    await app.catalog_settled()  # its start-up fetch's connection is not the chat's

    body = await app.graphql(CHAT, chat_input())

    assert body["data"] is None
    (error,) = body["errors"]
    assert without_request_id(error["extensions"]) == {"code": "PROVIDER_ERROR"}
    assert error["message"] == "openrouter: the upstream sent invalid JSON in its answer"
    assert error["path"] == ["chat"]
    assert_no_internals(body)
    await assert_connection_dropped(app, raw)


JUNK = Raw(b"\x89PNG\r\n\x1a\n\x00\x00junk\xff\xfe\n<html>502 Bad Gateway</html>\n")


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param((End(),), id="end-of-body"),
        pytest.param((Raw(b"data: [DONE]\n\n"), End()), id="done"),
    ],
)
async def test_body_of_nothing_but_junk_is_a_provider_error_not_an_answer(
    raw: FakeUpstream, fault_app: FaultAppFactory, ending: tuple[Raw | End, ...]
) -> None:
    # Bytes that hold no event at all, then a clean end of the body.
    raw.default(MISTRAL_UPSTREAM, steps(JUNK, *ending))
    app = await fault_app()

    outcome = await stream(app, chat_input())

    assert outcome.deltas == []
    failed = only_terminal(outcome)
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_ERROR"
    assert failed["message"] == "openrouter: the upstream's answer is not an event stream"
    assert_no_internals(failed)
    assert len(raw.chats) == 1  # not mistaken for a dropped connection and retried
    # The body was whole: its connection may be pooled again, but none is left in use.
    assert app.upstream_connections()[0] == 0
    (record,) = await usage_records(app)
    assert (record["status"], record["errorCode"], record["totalTokens"]) == (
        "failed",
        "PROVIDER_ERROR",
        0,
    )


# --- 5. the catalog on garbage and on a burst of 500s; chat on a burst of 500s ----------

CATALOG = """
{
  modelCatalog {
    stale stats { total byProvider { provider count } }
    providers { provider status modelCount error }
  }
}
"""
BAD_JSON = b'{"data": [{"id": "anthropic/claude-3.5-sonnet", "pricing": {'


def providers(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert "errors" not in body, body
    return {p["provider"]: p for p in body["data"]["modelCatalog"]["providers"]}


async def test_catalog_keeps_serving_the_last_good_lists_through_garbage_and_500s(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    clock = FakeClock()
    app = await start_app(
        clock=clock, AIPASTA_MODELS_TTL_SECONDS=60, AIPASTA_MODELS_RETRY_SECONDS=30, **UNLIMITED
    )
    first = await app.graphql(CATALOG)
    assert first["data"]["modelCatalog"]["stats"]["total"] == 11

    clock.advance(61)
    catalog_upstream.set("/openrouter/models", Reply(raw=BAD_JSON))
    burst = [Reply(status=500, raw=b"<html>Internal Server Error</html>") for _ in range(3)]
    catalog_upstream.enqueue("/hf/models", *burst)
    await app.graphql(CATALOG)  # the expired lists at once, refreshed in the background
    await app.catalog_settled()
    body = await app.graphql(CATALOG)

    catalog = body["data"]["modelCatalog"]
    assert catalog["stale"] is True
    assert catalog["stats"]["total"] == 11
    statuses = providers(body)
    assert statuses["openrouter"]["status"] == "stale"
    assert statuses["openrouter"]["modelCount"] == 7
    assert "not JSON" in statuses["openrouter"]["error"]
    assert statuses["huggingface"]["status"] == "stale"
    assert statuses["huggingface"]["modelCount"] == 4
    assert_no_internals(body)
    # The first attempt and two retries each, then nothing more.
    assert catalog_upstream.calls["/openrouter/models"] == 1 + 3
    assert catalog_upstream.calls["/hf/models"] == 1 + 3

    clock.advance(10)  # inside the retry window: the stale lists, without asking again
    again = providers(await app.graphql(CATALOG))
    assert {p: s["status"] for p, s in again.items()} == {
        "openrouter": "stale",
        "huggingface": "stale",
    }
    assert catalog_upstream.calls["/openrouter/models"] == 4
    assert catalog_upstream.calls["/hf/models"] == 4

    clock.advance(30)  # the 500 burst is over; OpenRouter still answers garbage
    await app.graphql(CATALOG)
    await app.catalog_settled()
    later = await app.graphql(CATALOG)
    statuses = providers(later)
    assert (statuses["huggingface"]["status"], statuses["huggingface"]["error"]) == ("ok", None)
    assert statuses["openrouter"]["status"] == "stale"
    assert later["data"]["modelCatalog"]["stats"]["total"] == 11
    status, health = await app.get("/health")
    assert status == 200 and health["status"] == "ok"


async def test_catalog_with_nothing_cached_serves_the_provider_that_answers(
    start_app: StartApp, upstream: FakeUpstream
) -> None:
    upstream.set("/openrouter/models", Reply(raw=b"\x00\xffnot json at all"))
    upstream.set("/hf/models", Reply(body=fixture_json("huggingface_models.json")))
    app = await start_app(**UNLIMITED)

    body = await app.graphql(CATALOG)

    catalog = body["data"]["modelCatalog"]
    assert catalog["stale"] is False
    assert {p["provider"]: p["count"] for p in catalog["stats"]["byProvider"]} == {
        "openrouter": 0,
        "huggingface": 4,
    }
    assert catalog["stats"]["total"] == 4
    statuses = providers(body)
    assert (statuses["openrouter"]["status"], statuses["openrouter"]["modelCount"]) == ("error", 0)
    assert "not JSON" in statuses["openrouter"]["error"]
    assert statuses["huggingface"]["status"] == "ok"
    assert_no_internals(body)
    # A chat for a model of the provider that failed is refused before anything is sent.
    error = await app.graphql(CHAT, chat_input())
    assert error["errors"][0]["extensions"]["code"] == "MODEL_NOT_FOUND"


async def test_chat_on_a_500_burst_fails_after_exactly_one_retry(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    raw.script(MISTRAL_UPSTREAM, *(http_error(500, "upstream exploded") for _ in range(3)))
    raw.default(MISTRAL_UPSTREAM, answer("Back", " again"))
    app = await fault_app()

    error = await app.error(CHAT, chat_input())

    assert error["extensions"]["code"] == "PROVIDER_UNAVAILABLE"
    assert error["message"].startswith("openrouter: ")
    assert_no_internals(error)
    assert len(raw.chats) == 2  # the request and its one retry

    # The third 500 of the burst, then the retry reaches the recovered upstream.
    body = await app.graphql(CHAT, chat_input())
    assert "errors" not in body, body
    assert body["data"]["chat"]["message"]["content"] == "Back again"
    assert body["data"]["chat"]["model"] == MISTRAL
    assert len(raw.chats) == 4

    # One record per request, not per attempt.
    records = await usage_records(app)
    assert [(r["status"], r["errorCode"]) for r in records] == [
        ("failed", "PROVIDER_UNAVAILABLE"),
        ("complete", None),
    ]
    # Error answers are read to their end: their connections stay reusable.
    assert app.upstream_connections()[0] == 0
