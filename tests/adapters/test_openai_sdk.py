"""The gateway as an OpenAI-compatible server, driven by the official `openai` SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from documents.database import Database
from resolvers.identity.key_store import ApiKeyStore
from tests.adapters.conftest import Clients, call
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


def hello(content: str = "Say hello") -> list[Any]:
    return [{"role": "user", "content": content}]


async def test_models_list_has_the_catalog_ids(stream_app: StreamApp, sdk: Clients) -> None:
    app = await stream_app()
    client = sdk(app)
    page = await client.models.list()
    ids = [model.id for model in page.data]
    graphql = await app.graphql("{ modelCatalog { all { id } } }")
    assert ids == [m["id"] for m in graphql["data"]["modelCatalog"]["all"]]
    mistral = await client.models.retrieve(MISTRAL)
    assert (mistral.id, mistral.owned_by, mistral.object) == (MISTRAL, "openrouter", "model")
    with pytest.raises(openai.NotFoundError) as refused:
        await client.models.retrieve("openrouter:no/such-model")
    assert refused.value.code == "model_not_found"


async def test_a_whole_chat_completion(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(
        MISTRAL_UPSTREAM,
        answer("Hello", " there", prompt_tokens=9, completion_tokens=2, cost=0.0004),
    )
    app = await stream_app()
    completion = await sdk(app).chat.completions.create(
        model=MISTRAL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ],
        temperature=0.3,
        top_p=0.9,
        max_tokens=20,
        stop=["\n\n"],
        seed=7,
    )
    assert completion.object == "chat.completion"
    assert completion.model == MISTRAL
    (choice,) = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 2)
    assert completion.usage.total_tokens == 11
    assert completion.usage.model_extra == {"cost": 0.0004}
    (upstream_call,) = sse.chats
    sent = upstream_call.body
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"]) == (0.3, 0.9, 20)
    assert (sent["stop"], sent["seed"]) == (["\n\n"], 7)
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]


async def test_a_streamed_chat_with_usage_and_history(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hel", "lo", "!", prompt_tokens=4, completion_tokens=3))
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(
        model=MISTRAL,
        messages=hello(),
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"session_id": "v1-session"},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.model == MISTRAL for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (4, 3)
    question, reply = await history(app, "v1-session")
    assert (question["content"], reply["content"]) == ("Say hello", "Hello!")


async def test_without_include_usage_no_usage_chunk(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("Hi"))
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(model=MISTRAL, messages=hello(), stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)


async def test_image_parts_reach_the_upstream_as_image_parts(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    vision = "openai/gpt-4o-mini"
    sse.script(vision, answer("A cat"))
    app = await stream_app()
    image = "https://example.com/cat.png"
    completion = await sdk(app).chat.completions.create(
        model=f"openrouter:{vision}",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "A cat"
    (upstream_call,) = sse.chats
    assert upstream_call.body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]


async def test_fallbacks_as_openrouter_models_array(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.default(MISTRAL_UPSTREAM, http_error(503, "overloaded"))
    sse.script("openai/gpt-4o-mini", answer("From the fallback"))
    app = await stream_app()
    completion = await sdk(app).chat.completions.create(
        model=MISTRAL,
        messages=hello(),
        extra_body={"models": [MISTRAL, "openrouter:openai/gpt-4o-mini"]},
    )
    assert completion.choices[0].message.content == "From the fallback"
    assert completion.model == "openrouter:openai/gpt-4o-mini"


# --- errors ---------------------------------------------------------------------------


async def test_an_unknown_model_raises_not_found(stream_app: StreamApp, sdk: Clients) -> None:
    app = await stream_app()
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as refused:
            await sdk(app).chat.completions.create(
                model="nope/nothing", messages=hello(), stream=stream
            )
        error = refused.value
        assert error.status_code == 404
        assert error.code == "model_not_found"
        assert error.type == "invalid_request_error"
        assert error.body == {
            "message": "no model `nope/nothing` in the catalog",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }


async def test_a_bad_key_raises_authentication_error_and_is_never_echoed(
    stream_app: StreamApp, sdk: Clients, database: Database
) -> None:
    key = (await ApiKeyStore(database).create(user_id="alice")).key
    app = await stream_app(AIPASTA_AUTH="required")
    bad = "aip_live_guessed-and-wrong-0123456789"
    client: AsyncOpenAI = sdk(app, bad)
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.chat.completions.create(model=MISTRAL, messages=hello())
    assert refused.value.status_code == 401
    assert refused.value.code == "unauthenticated"
    assert "guessed-and-wrong" not in str(refused.value.body)
    with pytest.raises(openai.AuthenticationError) as refused:
        await client.models.list()
    assert "guessed-and-wrong" not in str(refused.value.body)
    # Without a key the catalog answers (it is public), chat does not.
    status, _, _ = await call(app, "GET", "/v1/models")
    assert status == 200
    status, _, body = await call(
        app, "POST", "/v1/chat/completions", json={"model": MISTRAL, "messages": hello()}
    )
    assert status == 401
    assert body["error"]["type"] == "authentication_error"
    # The gateway's own key works.
    page = await sdk(app, key).models.list()
    assert page.data


async def test_rate_limit_raises_rate_limit_error_with_retry_after(
    stream_app: StreamApp, sdk: Clients
) -> None:
    app = await stream_app(AIPASTA_RATE_LIMIT="2/minute")
    client = sdk(app)
    # One budget with GraphQL and the seed REST API.
    assert "errors" not in await app.graphql("{ __typename }")
    assert (await call(app, "GET", "/api/models"))[0] == 200
    with pytest.raises(openai.RateLimitError) as refused:
        await client.models.list()
    assert refused.value.code == "rate_limited"
    assert refused.value.type == "rate_limit_error"
    assert int(refused.value.response.headers["Retry-After"]) >= 1


async def test_the_stream_cap_counts_rest_and_v1_streams(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Held"), Stall()))
    app = await stream_app(AIPASTA_MAX_STREAMS_PER_USER=1)
    held = await app.http.post(
        f"{app.base_url}/api/chat",
        json={"model": MISTRAL, "messages": hello(), "stream": True},
    )
    assert (await held.content.readline()).startswith(b"data: ")
    with pytest.raises(openai.RateLimitError) as refused:
        await sdk(app).chat.completions.create(model=MISTRAL, messages=hello(), stream=True)
    assert "open streams" in refused.value.message
    assert len(sse.chats) == 1
    held.close()


async def test_a_client_leaving_the_stream_closes_the_upstream_and_keeps_the_partial(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, steps(Text("Partial answer"), Stall()))
    app = await stream_app()
    stream = await sdk(app).chat.completions.create(
        model=MISTRAL, messages=hello(), stream=True, extra_body={"session_id": "v1-gone"}
    )
    first = await anext(aiter(stream))
    assert first.choices[0].delta.content == "Partial answer"
    await stream.close()
    upstream_call = await sse.chat(0)
    await upstream_call.wait_closed(within=1.0)
    await _assert_partial_kept(app, store, "v1-gone")


async def test_an_upstream_failure_is_a_typed_error_before_or_inside_the_stream(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    sse.default(MISTRAL_UPSTREAM, http_error(503, "overloaded"))
    app = await stream_app()
    with pytest.raises(openai.InternalServerError) as refused:
        await sdk(app).chat.completions.create(model=MISTRAL, messages=hello())
    assert refused.value.status_code == 503
    assert refused.value.code == "provider_unavailable"

    sse.script("openai/gpt-4o-mini", steps(Text("Half"), StreamError(502, "fell over")))
    stream = await sdk(app).chat.completions.create(
        model="openrouter:openai/gpt-4o-mini", messages=hello(), stream=True
    )
    with pytest.raises(openai.APIError) as failed:
        async for _ in stream:
            pass
    assert "fell over" in failed.value.message


async def test_unsupported_and_hostile_fields_are_a_400_naming_the_field(
    sse: FakeUpstream, stream_app: StreamApp, sdk: Clients
) -> None:
    app = await stream_app()
    client = sdk(app)
    # Mistral's listing names its parameters: tools, JSON and reasoning are not among them.
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"tools": [tool]}, "tools", f"{MISTRAL} does not support tools"),
        ({"response_format": {"type": "json_object"}}, "response_format", f"{MISTRAL} does not"),
        ({"reasoning_effort": "high"}, "reasoning_effort", f"{MISTRAL} does not support"),
        ({"audio": {"voice": "alloy"}}, "audio", "`audio` is not supported by this gateway"),
        ({"n": 2}, "n", "only one choice per request"),
        ({"temperature": "hot"}, "temperature", "`temperature`: Input should be a valid number"),
        ({"temperature": 5}, "temperature", "temperature must be between 0 and 2"),
        ({"max_tokens": 0}, "max_tokens", "maxTokens must be at least 1"),
        (
            {"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]},
            "messages[0].tool_call_id",
            "toolCallId names no tool call of the ASSISTANT turn before it",
        ),
        ({"messages": "hello"}, "messages", "`messages`: Input should be a valid list"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "maxTokens must be at least 1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages[0].content[0].image_url.url",
            "`messages[0].content[0].image_url.url`: Field required",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0]",
            "`messages[0].content[0]`: Input tag 'input_audio' found",
        ),
    ]
    for extra, param, message in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(model=MISTRAL, messages=hello(), extra_body=extra)
        body = refused.value.body
        assert isinstance(body, dict)
        assert body["param"] == param, (extra, body)
        assert body["message"].startswith(message), (extra, body)
        assert body["code"] == "bad_user_input"
    # Raw bodies the SDK would never send.
    for raw, message in [
        (b"{oops", "the request body is not valid JSON"),
        (b'"just a string"', "the request body must be a JSON object"),
    ]:
        status, _, body = await call(app, "POST", "/v1/chat/completions", data=raw)
        assert status == 400
        assert body["error"]["message"].startswith(message)
        assert body["error"]["type"] == "invalid_request_error"
    assert sse.chats == []


async def test_a_huge_body_is_413_in_openai_shape(sse: FakeUpstream, stream_app: StreamApp) -> None:
    app = await stream_app(AIPASTA_MAX_BODY_BYTES=4096)
    status, _, body = await call(
        app, "POST", "/v1/chat/completions", json={"model": MISTRAL, "messages": hello("x" * 9000)}
    )
    assert status == 413
    assert body == {
        "error": {
            "message": "Request body too large: the limit is 4096 bytes",
            "type": "invalid_request_error",
            "param": None,
            "code": "bad_user_input",
        }
    }
    assert sse.chats == []


async def test_a_users_budget_is_shared_by_graphql_rest_and_v1(
    stream_app: StreamApp, sdk: Clients, database: Database
) -> None:
    key = (await ApiKeyStore(database).create(user_id="alice")).key
    app = await stream_app(AIPASTA_AUTH="required", AIPASTA_USER_RATE_LIMIT="2/minute")
    auth = {"Authorization": f"Bearer {key}"}
    assert "errors" not in await app.graphql("{ chatSessions { nodes { id } } }", headers=auth)
    assert (await call(app, "GET", "/api/chat-history?sessions=true", headers=auth))[0] == 200
    with pytest.raises(openai.RateLimitError) as refused:
        await sdk(app, key).models.list()
    assert refused.value.code == "rate_limited"
    # Another user, and the anonymous address budget, are untouched.
    assert (await call(app, "GET", "/v1/models"))[0] == 200
