"""Structured output, judged by what the upstream's own `GET /models` listing says
(`supported_parameters`): a JSON schema is refused before any chat request for a model
without `structured_outputs`, and sent with `provider.require_parameters` to one with it;
a JSON object is what `response_format` alone promises."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import (
    JSON_ONLY,
    JSON_ONLY_UPSTREAM,
    THINKER,
    THINKER_UPSTREAM,
    Gateway,
    chunk,
    data_of,
    usage_chunk,
)
from tests.support.fake_upstream import FakeUpstream, Stream

CHAT = """
mutation Chat($input: ChatInput!) {
  chat(input: $input) { model finishReason message { content } }
}
"""
PLACE = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
    "required": ["city", "country"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "JSON_SCHEMA", "name": "place", "schema": PLACE, "strict": True}
MODELS = '{ models(filter: {provider: "openrouter"}) { nodes { id supportsStructuredOutput } } }'


def variables(model: str, response_format: dict[str, Any]) -> dict[str, Any]:
    return {
        "input": {
            "model": model,
            "messages": [{"role": "USER", "content": "Where is the Colosseum?"}],
            "options": {"responseFormat": response_format},
        }
    }


def json_answer(text: str, model: str) -> Stream:
    return Stream(
        (
            chunk({"role": "assistant", "content": text}, model=model),
            chunk({}, finish_reason="stop", model=model),
            usage_chunk({"prompt_tokens": 12, "completion_tokens": 9}, model=model),
        )
    )


async def test_a_json_schema_is_refused_for_a_model_whose_listing_lacks_structured_outputs(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    app = await gateway()
    models = data_of(await app.graphql(MODELS))["models"]["nodes"]
    assert {m["id"]: m["supportsStructuredOutput"] for m in models}[JSON_ONLY] is False

    body = await app.graphql(CHAT, variables(JSON_ONLY, JSON_SCHEMA))

    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["details"] == {"field": "options.responseFormat"}
    assert JSON_ONLY in error["message"]
    assert fake.chats == []


async def test_a_json_schema_goes_to_a_model_with_structured_outputs_only_via_honouring_providers(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    fake.script(
        THINKER_UPSTREAM, json_answer('{"city":"Rome","country":"Italy"}', THINKER_UPSTREAM)
    )
    app = await gateway()

    chat = data_of(await app.graphql(CHAT, variables(THINKER, JSON_SCHEMA)))["chat"]

    assert chat["message"]["content"] == '{"city":"Rome","country":"Italy"}'
    (call,) = fake.chats
    assert call.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "place", "schema": PLACE, "strict": True},
    }
    assert call.body["provider"] == {"require_parameters": True}


async def test_a_json_object_goes_to_a_model_whose_listing_has_response_format(
    gateway: Gateway, fake: FakeUpstream
) -> None:
    """`response_format` in `supported_parameters` is OpenRouter's JSON mode; only a JSON
    schema needs `structured_outputs`."""
    fake.script(JSON_ONLY_UPSTREAM, json_answer('{"city":"Rome"}', JSON_ONLY_UPSTREAM))
    app = await gateway()

    body = await app.graphql(CHAT, variables(JSON_ONLY, {"type": "JSON_OBJECT"}))

    assert data_of(body)["chat"]["message"]["content"] == '{"city":"Rome"}'
    (call,) = fake.chats
    assert call.body["response_format"] == {"type": "json_object"}
    assert call.body["provider"] == {"require_parameters": True}
