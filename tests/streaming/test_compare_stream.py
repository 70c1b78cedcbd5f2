"""`compareStream` over a real websocket, and the whole-answer `chat` / `compare`
mutations over HTTP, against the same fake SSE provider."""

from __future__ import annotations

from typing import Any

import pytest

from resolvers.chat.finish import ExchangeWriter
from resolvers.chat.run import RunResult
from tests.streaming.conftest import (
    CHAT,
    COMPARE,
    COMPARE_STREAM,
    GPT_MINI,
    GPT_MINI_UPSTREAM,
    LLAMA_HF,
    LLAMA_HF_UPSTREAM,
    MISTRAL,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    StreamApp,
    history,
    usage_records,
    user_says,
)
from tests.support.fake_upstream import FakeUpstream, Sleep, Text, answer, http_error, steps

WsClient = Any


def compare_input(*models: str, **extra: Any) -> dict[str, Any]:
    return {"input": {"models": list(models), "messages": user_says("Compare!"), **extra}}


async def test_compare_stream_ends_each_model_with_its_own_terminal_event(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(500, "boom"), http_error(500, "boom again"))
    sse.script(LLAMA_HF_UPSTREAM, answer("Llama ", "says ", "hi", completion_tokens=3))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(COMPARE_STREAM, compare_input(MISTRAL, LLAMA_HF))

    assert outcome.completed and outcome.errors == []
    assert {e["model"] for e in outcome.events} == {MISTRAL, LLAMA_HF}
    by_model = {m: [e for e in outcome.events if e["model"] == m] for m in (MISTRAL, LLAMA_HF)}

    (failed,) = by_model[MISTRAL]  # failed before its first token: no deltas
    assert failed["__typename"] == "ChatFailed"
    assert failed["code"] == "PROVIDER_UNAVAILABLE"
    assert failed["retryable"] is True
    assert failed["partialContent"] == ""

    llama = by_model[LLAMA_HF]
    deltas, completed = llama[:-1], llama[-1]
    assert all(d["__typename"] == "ChatDelta" for d in deltas)
    assert [d["index"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d["content"] for d in deltas) == "Llama says hi"
    assert completed["__typename"] == "ChatCompleted"
    assert completed["content"] == "Llama says hi"
    assert completed["provider"] == "huggingface"
    # Llama 3.1 8B on HF: the cheapest live provider, 0.02 / 0.05 USD per million.
    # 10 x 0.02e-6 + 3 x 0.05e-6, exactly.
    assert completed["cost"]["totalCost"] == 3.5e-7

    # A failing model is retried once before its first token, never more.
    assert [c.provider for c in sse.chats_for(MISTRAL_UPSTREAM)] == ["openrouter"] * 2
    assert [c.provider for c in sse.chats_for(LLAMA_HF_UPSTREAM)] == ["hf"]


async def test_compare_stream_saves_each_answer_to_the_session(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: WsClient, store: Any
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("from mistral"))
    sse.script(GPT_MINI_UPSTREAM, answer("from gpt"))
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(COMPARE_STREAM, compare_input(MISTRAL, GPT_MINI, sessionId="s-cmp"))

    completed = {e["model"]: e for e in outcome.terminals}
    assert set(completed) == {MISTRAL, GPT_MINI}
    nodes = await history(app, "s-cmp")
    questions = [n for n in nodes if n["isUser"]]
    answers = {n["model"]: n for n in nodes if not n["isUser"]}
    assert [q["content"] for q in questions] == ["Compare!"]  # the question, once
    assert {m: a["content"] for m, a in answers.items()} == {
        MISTRAL: "from mistral",
        GPT_MINI: "from gpt",
    }
    assert all(a["modelCount"] == 2 and a["status"] == "COMPLETE" for a in answers.values())
    assert {m: e["messageId"] for m, e in completed.items()} == {
        m: a["id"] for m, a in answers.items()
    }
    # One usage record per model, under the one request.
    records = await usage_records(store, count=2)
    assert sorted(r["model"] for r in records) == sorted([MISTRAL, GPT_MINI])
    assert records[0]["requestId"] == records[1]["requestId"]


async def test_an_unexpected_error_in_one_model_ends_the_compare_stream(
    sse: FakeUpstream,
    stream_app: StreamApp,
    ws_client: WsClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug while finishing one model's run must not leave the stream open forever."""
    sse.script(MISTRAL_UPSTREAM, answer("from mistral"))
    sse.script(GPT_MINI_UPSTREAM, answer("from gpt"))
    finish = ExchangeWriter.finish

    async def broken_for_mistral(self: ExchangeWriter, result: RunResult) -> str | None:
        if result.model.id == MISTRAL:
            raise RuntimeError("bookkeeping bug")
        return await finish(self, result)

    monkeypatch.setattr(ExchangeWriter, "finish", broken_for_mistral)
    app = await stream_app()
    ws: GraphQLWebSocket = await ws_client(app)

    outcome = await ws.run(COMPARE_STREAM, compare_input(MISTRAL, GPT_MINI))

    # The stream ends (`complete`) with one error instead of waiting for MISTRAL forever.
    assert outcome.completed
    assert len(outcome.errors) == 1
    assert not any(
        e["__typename"] == "ChatCompleted" and e["model"] == MISTRAL for e in outcome.events
    )


async def test_chat_mutation_returns_the_whole_answer(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, answer("One ", "piece", prompt_tokens=12, completion_tokens=34))
    app = await stream_app()

    body = await app.graphql(
        CHAT, {"input": {"model": MISTRAL, "messages": user_says("hi"), "sessionId": "s-http"}}
    )

    assert "errors" not in body, body
    result = body["data"]["chat"]
    assert result["model"] == MISTRAL
    assert result["provider"] == "openrouter"
    assert result["message"] == {"role": "ASSISTANT", "content": "One piece"}
    assert result["finishReason"] == "stop"
    assert result["usage"]["totalTokens"] == 46
    assert result["cost"]["totalCost"] == 2.172e-6
    _, reply = await history(app, "s-http")
    assert result["messageId"] == reply["id"]
    assert reply["content"] == "One piece"


async def test_chat_mutation_reports_an_upstream_failure_as_a_graphql_error(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(402, "Insufficient credits"))
    app = await stream_app()

    body = await app.graphql(CHAT, {"input": {"model": MISTRAL, "messages": user_says("hi")}})

    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["INSUFFICIENT_CREDITS"]


async def test_compare_mutation_answers_in_input_order_with_one_error(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    sse.script(MISTRAL_UPSTREAM, http_error(500, "down"), http_error(500, "still down"))
    sse.script(GPT_MINI_UPSTREAM, answer("gpt ", "answers"))
    sse.script(LLAMA_HF_UPSTREAM, answer("llama ", "answers"))
    app = await stream_app()

    body = await app.graphql(
        COMPARE,
        {"input": {"models": [GPT_MINI, MISTRAL, LLAMA_HF], "messages": user_says("hi")}},
    )

    assert "errors" not in body, body
    gpt, mistral, llama = body["data"]["compare"]
    assert [gpt["model"], mistral["model"], llama["model"]] == [GPT_MINI, MISTRAL, LLAMA_HF]
    assert gpt["error"] is None and gpt["result"]["message"]["content"] == "gpt answers"
    assert llama["error"] is None and llama["result"]["message"]["content"] == "llama answers"
    assert llama["result"]["provider"] == "huggingface"
    assert mistral["result"] is None
    assert mistral["error"]["code"] == "PROVIDER_UNAVAILABLE"
    assert mistral["error"]["retryable"] is True


async def test_a_whole_chat_answer_may_outlast_the_operation_timeout(
    sse: FakeUpstream, stream_app: StreamApp
) -> None:
    """Queries are cut at AIPASTA_OPERATION_TIMEOUT; a chat answer has its own timeouts."""
    sse.script(MISTRAL_UPSTREAM, steps(Text("slow "), Sleep(0.5), Text("answer")))
    app = await stream_app(AIPASTA_OPERATION_TIMEOUT=0.2)
    body = await app.graphql(CHAT, {"input": {"model": MISTRAL, "messages": user_says("hi")}})
    assert "errors" not in body, body
    assert body["data"]["chat"]["message"]["content"] == "slow answer"
