"""The seed's REST API on the gateway: the JSON shapes its frontend reads, key by key, over
the same chat, catalog, history, sign-in and limits as GraphQL."""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp
import pytest

from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.adapters.conftest import call
from tests.streaming.conftest import MISTRAL, MISTRAL_UPSTREAM, StreamApp, history
from tests.streaming.test_chat_stream import _assert_partial_kept
from tests.support.fake_upstream import (
    FakeUpstream,
    Stall,
    StreamError,
    Text,
    answer,
    http_error,
    steps,
)

SEED_MODEL_KEYS = [
    "id",
    "name",
    "provider",
    "description",
    "context_length",
    "pricing",
    "modalities",
    "isFree",
    "isMultimodal",
]


def seed_chat(content: str = "Say hello", **extra: Any) -> dict[str, Any]:
    return {"model": MISTRAL, "messages": [{"role": "user", "content": content}], **extra}


def seed_error(code: str, error: str, details: str) -> dict[str, Any]:
    return {"success": False, "error": error, "details": details, "code": code}


async def sse_chunks(response: aiohttp.ClientResponse) -> list[Any]:
    """Every `data:` payload of an event stream, `[DONE]` as the string."""
    chunks: list[Any] = []
    async for line in response.content:
        text = line.decode().strip()
        if text.startswith("data: "):
            data = text.removeprefix("data: ")
            chunks.append(data if data == "[DONE]" else json.loads(data))
    return chunks


# --- models ---------------------------------------------------------------------------


async def test_models_are_the_catalog_in_the_seed_shape(stream_app: StreamApp) -> None:
    app = await stream_app()
    status, headers, body = await call(app, "GET", "/api/models")
    assert status == 200
    assert headers["X-Request-ID"]
    assert list(body) == ["success", "cached", "models", "stats"]
    assert body["success"] is True
    assert isinstance(body["cached"], bool)
    models = body["models"]
    assert list(models) == ["all", "multimodal", "textOnly", "free", "paid", "byProvider"]
    assert set(models["byProvider"]) == {"openrouter", "huggingface"}
    assert list(body["stats"]) == ["total", "multimodal", "free", "paid"]
    everything = models["all"]
    assert body["stats"]["total"] == len(everything) > 0
    assert body["stats"]["free"] == len(models["free"])
    assert len(models["byProvider"]["openrouter"]) + len(models["byProvider"]["huggingface"]) == (
        len(everything)
    )
    mistral = next(m for m in everything if m["id"] == MISTRAL)
    assert list(mistral) == SEED_MODEL_KEYS
    assert mistral["provider"] == "openrouter"
    assert mistral["modalities"]["input"] == ["text"]
    # The same ids and counts as GraphQL's modelCatalog.
    graphql = await app.graphql("{ modelCatalog { all { id } stats { total free } } }")
    catalog = graphql["data"]["modelCatalog"]
    assert [m["id"] for m in everything] == [m["id"] for m in catalog["all"]]
    assert catalog["stats"]["free"] == body["stats"]["free"]


async def test_health_keeps_the_seed_keys(stream_app: StreamApp) -> None:
    app = await stream_app()
    status, _, body = await call(app, "GET", "/api/health")
    assert status == 200
    assert body["status"] in {"ok", "degraded"}
    assert {"database", "openrouter", "huggingface"} <= set(body["services"])


# --- chat -----------------------------------------------------------------------------


async def test_a_whole_chat_answers_the_seed_shape(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hello", " there", prompt_tokens=12, completion_tokens=4))
    app = await stream_app()
    status, _, body = await call(
        app, "POST", "/api/chat", json=seed_chat(options={"temperature": 0.2, "max_tokens": 50})
    )
    assert status == 200
    assert list(body) == ["choices", "usage", "cost"]
    assert body["choices"] == [{"message": {"role": "assistant", "content": "Hello there"}}]
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    assert list(body["cost"]) == ["inputCost", "outputCost", "totalCost"]
    assert body["cost"]["totalCost"] > 0
    (upstream_call,) = sse.chats
    assert upstream_call.body["temperature"] == 0.2
    assert upstream_call.body["max_tokens"] == 50
    assert upstream_call.body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_a_streamed_chat_sends_data_chunks_then_done_and_saves_the_exchange(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hel", "lo", prompt_tokens=3, completion_tokens=2))
    app = await stream_app()
    async with app.http.post(
        f"{app.base_url}/api/chat", json=seed_chat(stream=True, sessionId="seed-1")
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        chunks = await sse_chunks(response)
    *deltas, last, done = chunks
    assert "".join(d["choices"][0]["delta"]["content"] for d in deltas) == "Hello"
    assert all(list(d) == ["choices"] and list(d["choices"][0]) == ["delta"] for d in deltas)
    assert last["choices"] == [{"delta": {}, "finish_reason": "stop"}]
    assert last["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert list(last["cost"]) == ["inputCost", "outputCost", "totalCost"]
    assert done == "[DONE]"
    question, reply = await history(app, "seed-1")
    assert (question["content"], reply["content"]) == ("Say hello", "Hello")


async def test_a_client_leaving_a_stream_closes_the_upstream_and_keeps_the_partial(
    sse: FakeUpstream, stream_app: StreamApp, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial answer"), Stall()))
    app = await stream_app()
    response = await app.http.post(
        f"{app.base_url}/api/chat", json=seed_chat(stream=True, sessionId="seed-gone")
    )
    line = await response.content.readline()
    assert json.loads(line.decode().removeprefix("data: ")) == {
        "choices": [{"delta": {"content": "Partial answer"}}]
    }
    response.close()
    upstream_call = await sse.chat(0)
    await upstream_call.wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "seed-gone")


async def test_an_upstream_failure_before_any_token_is_an_error_status(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.default(MISTRAL_UPSTREAM, http_error(503, "overloaded"))
    app = await stream_app()
    for stream in (False, True):
        status, _, body = await call(app, "POST", "/api/chat", json=seed_chat(stream=stream))
        assert status == 503, body
        assert body["success"] is False
        assert body["code"] == "PROVIDER_UNAVAILABLE"
        assert body["error"] == "AI provider unavailable"


async def test_a_failure_mid_stream_ends_it_with_the_seed_error_then_done(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Half"), StreamError(502, "provider fell over")))
    app = await stream_app()
    async with app.http.post(f"{app.base_url}/api/chat", json=seed_chat(stream=True)) as response:
        chunks = await sse_chunks(response)
    assert chunks[0] == {"choices": [{"delta": {"content": "Half"}}]}
    failure = chunks[1]
    assert list(failure) == ["success", "error", "details", "code"]
    assert failure["success"] is False
    assert failure["code"] == "PROVIDER_UNAVAILABLE"
    assert chunks[2:] == ["[DONE]"]


# --- history --------------------------------------------------------------------------


async def test_history_saves_lists_messages_and_sessions(stream_app: StreamApp) -> None:
    app = await stream_app()
    message = {
        "content": "What is pasta?",
        "isUser": True,
        "timestamp": "2026-01-02T03:04:05.000Z",
        "attachments": [],
    }
    status, _, saved = await call(
        app, "POST", "/api/chat-history", json={"sessionId": "s-1", "message": message}
    )
    assert status == 200, saved
    assert list(saved) == ["success", "messageId", "message"]
    assert saved["message"] == {
        "_id": saved["messageId"],
        "sessionId": "s-1",
        "userId": "local",
        "content": "What is pasta?",
        "isUser": True,
        "timestamp": "2026-01-02T03:04:05Z",
        "attachments": [],
        "cost": None,
        "modelCount": None,
        "model": None,
        "status": "COMPLETE",
    }
    status, _, listed = await call(app, "GET", "/api/chat-history?sessionId=s-1&limit=50")
    assert status == 200
    assert listed == {"success": True, "messages": [saved["message"]]}
    status, _, sessions = await call(app, "GET", "/api/chat-history?sessions=true&limit=20")
    assert status == 200
    (session,) = sessions["sessions"]
    assert session["sessionId"] == "s-1"
    assert session["title"] == "What is pasta?"
    assert session["messageCount"] == 1
    assert list(session) == [
        "sessionId",
        "title",
        "lastMessage",
        "messageCount",
        "totalCost",
        "createdAt",
        "updatedAt",
    ]
    # A session nothing was saved to yet lists no messages, as the seed did.
    status, _, fresh = await call(app, "GET", "/api/chat-history?sessionId=new-one")
    assert (status, fresh) == (200, {"success": True, "messages": []})


async def test_user_id_must_be_the_signed_in_users(
    stream_app: StreamApp, database: Database
) -> None:
    key = (await ApiKeyStore(database).create(user_id="alice")).key
    app = await stream_app(AIPASTA_AUTH="required")
    auth = {"Authorization": f"Bearer {key}"}
    message = {"content": "hi", "isUser": True}
    status, _, body = await call(
        app,
        "POST",
        "/api/chat-history",
        json={"sessionId": "s", "userId": "mallory", "message": message},
        headers=auth,
    )
    assert status == 403
    assert body == seed_error(
        "FORBIDDEN",
        "Forbidden",
        "`userId` must be the signed-in user's: identity comes from the credentials",
    )
    status, _, body = await call(
        app, "GET", "/api/chat-history?sessions=true&userId=bob", headers=auth
    )
    assert status == 403
    status, _, body = await call(
        app,
        "POST",
        "/api/chat-history",
        json={"sessionId": "s", "userId": "alice", "message": message},
        headers=auth,
    )
    assert status == 200
    assert body["message"]["userId"] == "alice"


# --- errors ---------------------------------------------------------------------------


async def test_sign_in_is_required_for_chat_and_history(
    stream_app: StreamApp, database: Database
) -> None:
    app = await stream_app(AIPASTA_AUTH="required")
    status, headers, body = await call(app, "POST", "/api/chat", json=seed_chat())
    assert status == 401
    assert headers["WWW-Authenticate"] == "Bearer"
    assert list(body) == ["success", "error", "details", "code"]
    assert (body["success"], body["error"], body["code"]) == (
        False,
        "Authentication required",
        "UNAUTHENTICATED",
    )
    assert body["details"] == "sign in: send `Authorization: Bearer <token>`"
    status, _, body = await call(
        app,
        "GET",
        "/api/chat-history?sessions=true",
        headers={"Authorization": "Bearer aip_live_not-a-real-key-at-all"},
    )
    assert status == 401
    assert body["code"] == "UNAUTHENTICATED"
    assert "not-a-real-key" not in json.dumps(body)
    # The catalog stays public, as in the seed.
    status, _, _ = await call(app, "GET", "/api/models")
    assert status == 200


async def test_an_unknown_model_is_404_in_the_seed_error_shape(stream_app: StreamApp) -> None:
    app = await stream_app()
    status, _, body = await call(app, "POST", "/api/chat", json={**seed_chat(), "model": "nope"})
    assert status == 404
    assert body == seed_error(
        "MODEL_NOT_FOUND", "Model not found", "no model `nope` in the catalog"
    )


async def test_hostile_bodies_get_400_naming_what_is_wrong(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    app = await stream_app()
    cases: list[tuple[bytes | Any, str]] = [
        (b"{not json", "the request body is not valid JSON: Expecting property name"),
        (b"", "send a JSON object as the request body"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b"[" * 200 + b"]" * 200, "the request body is not valid JSON: JSON nested deeper"),
        ({"model": MISTRAL}, "`messages`: Field required"),
        ({**seed_chat(), "model": 7}, "`model`: Input should be a valid string"),
        ({**seed_chat(), "stream": "yes"}, "`stream`: Input should be a valid boolean"),
        (
            {"model": MISTRAL, "messages": [{"role": "wizard", "content": "hi"}]},
            "`messages[0].role`: Input should be 'system', 'user' or 'assistant'",
        ),
        (
            {**seed_chat(), "options": {"temperature": "hot"}},
            "`options.temperature`: Input should be a valid number",
        ),
        ({**seed_chat(), "options": {"temperature": 9}}, "temperature must be between 0 and 2"),
        (seed_chat("nul \u0000 inside"), "`messages[0].content` contains a NUL byte"),
        ({"model": MISTRAL, "messages": []}, "messages must not be empty"),
    ]
    for body, details in cases:
        if isinstance(body, bytes):
            status, _, answer_ = await call(app, "POST", "/api/chat", data=body)
        else:
            status, _, answer_ = await call(app, "POST", "/api/chat", json=body)
        assert status == 400, (body, answer_)
        assert answer_["success"] is False
        assert (answer_["code"], answer_["error"]) == ("BAD_USER_INPUT", "Invalid request")
        assert answer_["details"].startswith(details), (body, answer_)
    status, _, answer_ = await call(app, "GET", "/api/chat-history?sessionId=s&limit=lots")
    assert (status, answer_["details"]) == (400, "`limit` must be a whole number")
    assert sse.chats == []


async def test_a_huge_body_is_413(sse: FakeUpstream, stream_app: StreamApp) -> None:
    app = await stream_app(AIPASTA_MAX_BODY_BYTES=4096)
    huge = seed_chat("x" * 10_000)
    status, _, body = await call(app, "POST", "/api/chat", json=huge)
    assert status == 413
    assert body == seed_error(
        "BAD_USER_INPUT",
        "Request body too large",
        "Request body too large: the limit is 4096 bytes",
    )

    async def chunked() -> Any:
        for _ in range(5):
            yield b" " * 2048

    async with app.http.post(f"{app.base_url}/api/chat", data=chunked()) as response:
        assert response.status == 413
    assert sse.chats == []


async def test_rate_limited_with_retry_after_in_one_budget_with_graphql(
    stream_app: StreamApp,
) -> None:
    app = await stream_app(AIPASTA_RATE_LIMIT="2/minute")
    assert "errors" not in await app.graphql("{ __typename }")
    assert (await call(app, "GET", "/api/models"))[0] == 200
    status, headers, body = await call(app, "GET", "/api/models")
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert body["code"] == "RATE_LIMITED"
    assert body["error"] == "Rate limit exceeded"


async def test_each_request_is_one_operation_in_the_log_and_metrics(
    sse: FakeUpstream, stream_app: StreamApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aipasta.operations")
    sse.script(MISTRAL_UPSTREAM, answer("Hi", prompt_tokens=5, completion_tokens=1))
    sse.script(MISTRAL_UPSTREAM, answer("Hi again", prompt_tokens=5, completion_tokens=2))
    app = await stream_app()
    status, headers, _ = await call(app, "POST", "/api/chat", json=seed_chat())
    assert status == 200
    async with app.http.post(f"{app.base_url}/api/chat", json=seed_chat(stream=True)) as response:
        streamed_id = response.headers["X-Request-ID"]
        await sse_chunks(response)
    lines = {
        r.fields["request_id"]: r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "aipasta.operations"
    }
    whole = lines[headers["X-Request-ID"]]
    assert (whole["operation_type"], whole["operation_name"], whole["status"]) == (
        "mutation",
        "api_chat",
        "ok",
    )
    assert (whole["model"], whole["prompt_tokens"], whole["completion_tokens"]) == (MISTRAL, 5, 1)
    streamed = lines[streamed_id]
    assert (streamed["operation_type"], streamed["completion_tokens"]) == ("subscription", 2)
    _, metrics = await app.get("/metrics")
    assert 'name="api_chat",outcome="ok",type="mutation"' in metrics
    assert 'name="api_chat",outcome="ok",type="subscription"' in metrics
