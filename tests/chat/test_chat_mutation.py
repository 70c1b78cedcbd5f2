"""`chat` and `compare`: whole answers, exact cost, retries, fallbacks, errors, history."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from providers.chat import ChatDelta, TokenUsage
from providers.errors import (
    ContentFiltered,
    InsufficientCredits,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    UpstreamModelNotFound,
)
from tests.chat.conftest import HF, PRICED, UNPRICED, VISION, ChatHarness
from tests.support.errors import without_request_id

CHAT = """
mutation ($input: ChatInput!) {
  chat(input: $input) {
    id model provider finishReason latencyMs messageId
    message { role content }
    usage { promptTokens completionTokens totalTokens estimated }
    cost { inputCost outputCost totalCost known }
  }
}
"""
COMPARE = """
mutation ($input: CompareInput!) {
  compare(input: $input) {
    model
    result { model message { content } cost { totalCost } }
    error { code message retryable }
  }
}
"""
HISTORY = """
query ($id: ID!) { chatHistory(sessionId: $id) { nodes { id content isUser status model cost } } }
"""


def chat_input(model: str = PRICED.id, text: str = "Hi there", **extra: Any) -> dict[str, Any]:
    return {"input": {"model": model, "messages": [{"role": "USER", "content": text}], **extra}}


def error_of(result: Any) -> dict[str, Any]:
    assert result.errors, result
    return without_request_id(result.errors[0].extensions, "req-chat")


def usage_delta(prompt: int, completion: int, cost: Decimal | None = None) -> ChatDelta:
    return ChatDelta(
        content="",
        finish_reason="stop",
        usage=TokenUsage(prompt, completion, prompt + completion, cost),
    )


async def test_whole_answer_with_exact_cost_from_catalog_price(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("Hel", "lo", usage_delta(12, 2))
    result = await harness.run(CHAT, chat_input())
    assert result.errors is None
    chat = result.data["chat"]  # type: ignore[index]
    assert chat["message"] == {"role": "ASSISTANT", "content": "Hello"}
    assert (chat["model"], chat["provider"], chat["finishReason"]) == (
        PRICED.id,
        "openrouter",
        "stop",
    )
    assert chat["usage"] == {
        "promptTokens": 12,
        "completionTokens": 2,
        "totalTokens": 14,
        "estimated": False,
    }
    # 12 * 0.028 / 1e6 and 2 * 0.054 / 1e6, computed in Decimal.
    assert chat["cost"] == {
        "inputCost": 3.36e-07,
        "outputCost": 1.08e-07,
        "totalCost": 4.44e-07,
        "known": True,
    }
    assert chat["latencyMs"] >= 0 and chat["messageId"] is None
    (request,) = harness.openrouter.requests
    assert request.model == "mistralai/mistral-7b-instruct"
    assert request.messages == [{"role": "user", "content": "Hi there"}]


async def test_reported_cost_wins_over_the_catalog_price(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("ok", usage_delta(1000, 100, Decimal("0.00042")))
    chat = (await harness.run(CHAT, chat_input())).data["chat"]  # type: ignore[index]
    assert chat["cost"]["totalCost"] == 0.00042
    assert chat["cost"]["known"] is True


async def test_missing_usage_is_estimated(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("a fairly short answer")
    chat = (await harness.run(CHAT, chat_input())).data["chat"]  # type: ignore[index]
    assert chat["usage"]["estimated"] is True
    assert chat["usage"]["completionTokens"] > 0 and chat["usage"]["promptTokens"] > 0
    assert chat["cost"]["known"] is True and chat["cost"]["totalCost"] > 0


async def test_unknown_price_reports_known_false(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("ok", usage_delta(10, 10))
    chat = (await harness.run(CHAT, chat_input(UNPRICED.id))).data["chat"]  # type: ignore[index]
    assert chat["cost"] == {"inputCost": 0.0, "outputCost": 0.0, "totalCost": 0.0, "known": False}


async def test_bare_upstream_id_resolves_through_the_catalog(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("ok")
    chat = (await harness.run(CHAT, chat_input("mistralai/mistral-7b-instruct"))).data["chat"]  # type: ignore[index]
    assert chat["model"] == PRICED.id


async def test_unknown_model_fails_before_any_upstream_call(harness: ChatHarness) -> None:
    result = await harness.run(CHAT, chat_input("nobody/nothing"))
    assert error_of(result)["code"] == "MODEL_NOT_FOUND"
    assert harness.openrouter.requests == [] and harness.hf.requests == []
    unknown_fallback = await harness.run(CHAT, chat_input(fallbacks=["nobody/else"]))
    assert error_of(unknown_fallback)["details"]["field"] == "input.fallbacks[0]"
    assert harness.openrouter.requests == []


async def test_image_attachments_become_content_parts_for_vision_models(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue("a cat")
    message = {
        "role": "USER",
        "content": "What is this?",
        "attachments": [{"kind": "image", "url": "https://example.com/cat.png"}],
    }
    variables = {"input": {"model": VISION.id, "messages": [message]}}
    assert (await harness.run(CHAT, variables)).errors is None
    (request,) = harness.openrouter.requests
    assert request.messages[0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]

    variables["input"]["model"] = PRICED.id
    refused = await harness.run(CHAT, variables)
    assert error_of(refused)["code"] == "BAD_USER_INPUT"
    assert error_of(refused)["details"]["field"] == "input.messages[0].attachments[0]"
    assert len(harness.openrouter.requests) == 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"temperature": 2.5}, "options.temperature"),
        ({"temperature": -0.1}, "options.temperature"),
        ({"topP": 1.5}, "options.topP"),
        ({"maxTokens": 0}, "options.maxTokens"),
        ({"maxTokens": 40000}, "options.maxTokens"),  # beyond the model's 32768 context
        ({"stop": ["a", "b", "c", "d", "e"]}, "options.stop"),
        ({"stop": [""]}, "options.stop[0]"),
    ],
)
async def test_options_are_validated(
    harness: ChatHarness, options: dict[str, Any], field: str
) -> None:
    result = await harness.run(CHAT, chat_input(options=options))
    assert error_of(result) == {"code": "BAD_USER_INPUT", "details": {"field": field}}
    assert harness.openrouter.requests == []


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "input.messages"),
        ([{"role": "USER", "content": "x\x00y"}], "input.messages[0].content"),
        ([{"role": "USER", "content": "x" * 100_001}], "input.messages[0].content"),
        (
            [
                {
                    "role": "USER",
                    "content": "x",
                    "attachments": [{"kind": "image", "url": "http://a/b"}],
                }
            ],
            "input.messages[0].attachments[0].url",
        ),
    ],
)
async def test_messages_are_validated(
    harness: ChatHarness, messages: list[dict[str, Any]], field: str
) -> None:
    result = await harness.run(CHAT, {"input": {"model": VISION.id, "messages": messages}})
    assert error_of(result)["details"]["field"] == field
    assert harness.openrouter.requests == []


async def test_retry_then_fallback(harness: ChatHarness) -> None:
    down = ProviderUnavailable("HTTP 503", provider="openrouter", status=503)
    harness.openrouter.enqueue(down)
    harness.openrouter.enqueue(down)
    harness.hf.enqueue("from the fallback")
    chat = (await harness.run(CHAT, chat_input(fallbacks=[HF.id]))).data["chat"]  # type: ignore[index]
    assert chat["model"] == HF.id and chat["provider"] == "huggingface"
    assert chat["message"]["content"] == "from the fallback"
    assert len(harness.openrouter.requests) == 2  # the first try and one retry
    assert harness.hf.requests[0].model == HF.upstream_id


async def test_rate_limit_is_retried_after_its_retry_after(harness: ChatHarness) -> None:
    harness.openrouter.enqueue(
        ProviderRateLimited("slow down", provider="openrouter", retry_after=0.2)
    )
    harness.openrouter.enqueue("ok")
    chat = (await harness.run(CHAT, chat_input())).data["chat"]  # type: ignore[index]
    assert chat["message"]["content"] == "ok"
    assert harness.sleeps.asked == [0.2]  # waited before the retry (recorded, not waited)
    assert len(harness.openrouter.requests) == 2


async def test_errors_that_a_retry_cannot_fix_go_straight_to_the_fallback(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue(InsufficientCredits("no credit", provider="openrouter", status=402))
    harness.hf.enqueue("ok")
    chat = (await harness.run(CHAT, chat_input(fallbacks=[HF.id]))).data["chat"]  # type: ignore[index]
    assert chat["model"] == HF.id
    assert len(harness.openrouter.requests) == 1


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ProviderBadRequest("bad", provider="openrouter", status=400), "BAD_USER_INPUT"),
        (ProviderAuthError("key refused", provider="openrouter", status=401), "PROVIDER_ERROR"),
        (
            InsufficientCredits("no credit", provider="openrouter", status=402),
            "INSUFFICIENT_CREDITS",
        ),
        (ContentFiltered("flagged", provider="openrouter", status=403), "CONTENT_FILTERED"),
        (UpstreamModelNotFound("gone", provider="openrouter", status=404), "MODEL_NOT_FOUND"),
        (ProviderTimeout("no first token", provider="openrouter"), "PROVIDER_TIMEOUT"),
        (ProviderRateLimited("429", provider="openrouter", retry_after=0), "PROVIDER_RATE_LIMITED"),
        (
            ProviderUnavailable("HTTP 502", provider="openrouter", status=502),
            "PROVIDER_UNAVAILABLE",
        ),
    ],
)
async def test_upstream_errors_map_to_codes_and_are_recorded(
    harness: ChatHarness, error: ProviderError, code: str
) -> None:
    harness.openrouter.enqueue(error)
    harness.openrouter.enqueue(error)  # retryable ones are tried twice
    result = await harness.run(CHAT, chat_input())
    assert error_of(result)["code"] == code
    (record,) = await harness.usage_records()
    assert (record["status"], record["errorCode"]) == ("failed", code)
    assert record["userId"] == "alice" and record["model"] == PRICED.id
    assert record["promptTokens"] == 0  # nothing was generated, nothing billed


async def test_no_retry_or_fallback_after_the_first_token(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("half an ans", ProviderUnavailable("reset", provider="openrouter"))
    result = await harness.run(CHAT, chat_input(fallbacks=[HF.id], sessionId="s1"))
    assert error_of(result)["code"] == "PROVIDER_UNAVAILABLE"
    assert len(harness.openrouter.requests) == 1 and harness.hf.requests == []
    history = (await harness.run(HISTORY, {"id": "s1"})).data["chatHistory"]["nodes"]  # type: ignore[index]
    assert [(m["isUser"], m["content"], m["status"]) for m in history] == [
        (True, "Hi there", "COMPLETE"),
        (False, "half an ans", "PARTIAL"),
    ]
    (record,) = await harness.usage_records()
    assert record["status"] == "partial" and record["estimated"] is True


async def test_session_gets_the_question_and_the_answer(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("Paris.", usage_delta(10, 2))
    chat = (await harness.run(CHAT, chat_input(text="Capital of France?", sessionId="geo"))).data[
        "chat"
    ]  # type: ignore[index]
    history = (await harness.run(HISTORY, {"id": "geo"})).data["chatHistory"]["nodes"]  # type: ignore[index]
    question, answer = history
    assert (question["isUser"], question["content"]) == (True, "Capital of France?")
    assert (answer["id"], answer["content"], answer["status"]) == (
        chat["messageId"],
        "Paris.",
        "COMPLETE",
    )
    assert answer["model"] == PRICED.id and answer["cost"] == chat["cost"]["totalCost"]
    other = await harness.run(HISTORY, {"id": "geo"}, user="bob")
    assert error_of(other)["code"] == "NOT_FOUND"


async def test_sign_in_is_required(harness: ChatHarness) -> None:
    result = await harness.run(CHAT, chat_input(), user=None)
    assert error_of(result)["code"] == "UNAUTHENTICATED"


async def test_a_cancelled_request_still_records_and_saves_what_it_got(
    harness: ChatHarness,
) -> None:
    reached = asyncio.Event()
    never = asyncio.Event()
    harness.openrouter.enqueue("partial answer", reached, never)
    # `reached` is set by the test once the first delta is out; the stream then waits forever.
    task = asyncio.create_task(harness.run(CHAT, chat_input(sessionId="cut")))
    while not harness.openrouter.requests:
        await asyncio.sleep(0)
    reached.set()
    for _ in range(100):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await harness.services.background.drain(within=5)
    assert harness.openrouter.closed_early == 1
    (record,) = await harness.usage_records()
    assert record["status"] == "cancelled"
    history = (await harness.run(HISTORY, {"id": "cut"})).data["chatHistory"]["nodes"]  # type: ignore[index]
    assert [(m["content"], m["status"]) for m in history][-1] == ("partial answer", "PARTIAL")


async def test_compare_keeps_input_order_and_isolates_failures(harness: ChatHarness) -> None:
    harness.openrouter.enqueue("mistral says hi")
    harness.hf.enqueue(ProviderAuthError("key refused", provider="huggingface", status=401))
    result = await harness.run(
        COMPARE,
        {
            "input": {
                "models": [PRICED.id, HF.id],
                "messages": [{"role": "USER", "content": "hi"}],
            }
        },
    )
    assert result.errors is None
    first, second = result.data["compare"]  # type: ignore[index]
    assert (
        first["model"] == PRICED.id and first["result"]["message"]["content"] == "mistral says hi"
    )
    assert first["error"] is None
    assert second["model"] == HF.id and second["result"] is None
    assert second["error"]["code"] == "PROVIDER_ERROR" and second["error"]["retryable"] is False
    assert len(await harness.usage_records()) == 2


@pytest.mark.parametrize(
    ("models", "field"),
    [
        ([], "input.models"),
        ([PRICED.id, PRICED.id], "input.models"),
        ([PRICED.id] * 7, "input.models"),
    ],
)
async def test_compare_model_list_is_validated(
    harness: ChatHarness, models: list[str], field: str
) -> None:
    variables = {"input": {"models": models, "messages": [{"role": "USER", "content": "hi"}]}}
    assert error_of(await harness.run(COMPARE, variables))["details"]["field"] == field


async def test_a_saved_answer_keeps_its_token_counts_under_their_stored_names(
    harness: ChatHarness,
) -> None:
    harness.openrouter.enqueue("Paris.", usage_delta(10, 2, Decimal("0.00042")))
    await harness.run(CHAT, chat_input(sessionId="geo"))
    assert harness.services.database is not None
    answer = await harness.services.database.db["chat_messages"].find_one({"isUser": False})
    assert answer is not None
    assert answer["usage"] == {
        "promptTokens": 10,
        "completionTokens": 2,
        "totalTokens": 12,
        "estimated": False,
        "reasoningTokens": 0,
        "cachedPromptTokens": 0,
        "cacheWriteTokens": 0,
    }
    history = (await harness.run(HISTORY, {"id": "geo"})).data["chatHistory"]["nodes"]  # type: ignore[index]
    assert [m["content"] for m in history] == ["Hi there", "Paris."]
