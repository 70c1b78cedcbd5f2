"""The simulated upstream, read by the gateway's own catalog parser and chat client."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from providers.chat import ChatDelta, ChatRequest
from providers.errors import ProviderRateLimited, ProviderUnavailable
from providers.simulator import KEEPALIVE, MAX_BODY_BYTES
from tests.simulator.conftest import SimulatorClients, StartSimulator

HELLO = [{"role": "user", "content": "Say hello"}]


def events(body: bytes) -> list[Any]:
    """The data of each SSE event (JSON decoded; `[DONE]` as is)."""
    found: list[Any] = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block.removeprefix("data: ")
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


async def collect(
    sim: SimulatorClients, request: ChatRequest, into: list[ChatDelta] | None = None
) -> list[ChatDelta]:
    """The deltas of one answer; `into` keeps those that came before a failure."""
    deltas = [] if into is None else into
    async for delta in sim.chat.stream_chat(request):
        deltas.append(delta)
    return deltas


async def test_catalog_lists_every_kind_of_model_with_its_prices(
    simulator: StartSimulator,
) -> None:
    sim = await simulator()
    models = {m.upstream_id: m for m in await sim.listing().list_models()}

    assert set(models) == {
        "sim/chat",
        "sim/chat:free",
        "sim/vision",
        "sim/reasoner",
        "sim/structured",
    }
    assert all(m.provider == "simulator" and "(simulated)" in m.name for m in models.values())
    chat = models["sim/chat"]
    assert chat.id == "simulator:sim/chat"
    assert (chat.pricing.prompt_per_million, chat.pricing.completion_per_million) == (
        Decimal("0.5"),
        Decimal("1.5"),
    )
    assert chat.paid and not chat.multimodal and "tools" in chat.supported_parameters
    assert models["sim/chat:free"].free
    vision = models["sim/vision"]
    assert vision.multimodal and vision.input_modalities == ("text", "image", "file")
    assert vision.pricing.per_image == Decimal("0.001")
    assert "structured_outputs" in models["sim/structured"].supported_parameters
    assert "reasoning" in models["sim/reasoner"].supported_parameters
    # The raw listing carries OpenRouter's cache-read price too.
    async with sim.http.get(f"{sim.running.base_url}/models") as response:
        listing = {m["id"]: m for m in (await response.json())["data"]}
    assert listing["sim/chat"]["pricing"]["input_cache_read"] == "0.00000005"


async def test_a_listing_refused_with_429_is_retried_after_retry_after(
    simulator: StartSimulator,
) -> None:
    sim = await simulator()
    listing = sim.listing(**{"X-Simulate": "error=429 retry-after=3 times=1"})
    models = await listing.list_models()
    assert len(models) == 5
    assert sim.sleeps.asked == [3.0]


async def test_streamed_answer_reaches_the_client_with_exact_usage_and_cost(
    simulator: StartSimulator,
) -> None:
    sim = await simulator(tokens=12)
    deltas = await collect(sim, ChatRequest(model="sim/chat", messages=HELLO))

    text = "".join(d.content for d in deltas)
    assert text.startswith("Simulated") and len(text.split()) == 12
    assert deltas[-1].usage is not None
    # 2 words + 3 per message in; 12 tokens out; at $0.5 and $1.5 per million.
    assert (deltas[-1].usage.prompt_tokens, deltas[-1].usage.completion_tokens) == (5, 12)
    assert deltas[-1].usage.cost == Decimal("0.0000205")
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    assert deltas[-1].response_id is not None and deltas[-1].response_id.startswith("gen-")
    # The same prompt gets the same words, streamed or whole.
    _, whole = await sim.post({"model": "sim/chat", "messages": HELLO})
    again = await collect(sim, ChatRequest(model="sim/chat", messages=HELLO))
    assert "".join(d.content for d in again) == text
    assert json.loads(whole)["choices"][0]["message"]["content"].startswith("Simulated")


async def test_whole_answer_in_openrouter_format(simulator: StartSimulator) -> None:
    sim = await simulator(tokens=7)
    conversation = [
        *HELLO,
        {"role": "assistant", "content": "Hi"},
        {"role": "user", "content": "Again"},
    ]
    response, body = await sim.post({"model": "sim/chat", "messages": conversation})

    assert response.status == 200
    answer = json.loads(body)
    assert response.headers["X-Generation-Id"] == answer["id"]
    assert answer["object"] == "chat.completion"
    assert len(answer["choices"][0]["message"]["content"].split()) == 7
    usage = answer["usage"]
    # The earlier turns (5 + 4 tokens) count as read from the provider's cache.
    assert usage["prompt_tokens"] == 13
    assert usage["prompt_tokens_details"]["cached_tokens"] == 9
    assert Decimal(str(usage["cost"])) == (
        4 * Decimal("0.0000005") + 9 * Decimal("0.00000005") + 7 * Decimal("0.0000015")
    )


async def test_stream_has_keepalives_usage_last_then_done(simulator: StartSimulator) -> None:
    sim = await simulator(tokens=3, token_delay=0.02, latency=0.5)
    response, body = await sim.post({"model": "sim/chat", "messages": HELLO, "stream": True})

    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert body.startswith(KEEPALIVE)
    chunks = events(body)
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["choices"] == [] and chunks[-2]["usage"]["completion_tokens"] == 3
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert {c["id"] for c in chunks[:-1]} == {response.headers["X-Generation-Id"]}
    # The latency, then one delay per token, asked of the injected sleep.
    assert sim.sleeps.asked == [0.5, 0.02, 0.02, 0.02]


async def test_reasoning_model_streams_reasoning_before_the_answer(
    simulator: StartSimulator,
) -> None:
    sim = await simulator(tokens=9)
    _, body = await sim.post({"model": "sim/reasoner", "messages": HELLO, "stream": True})
    deltas = [c["choices"][0]["delta"] for c in events(body)[:-1] if c["choices"]]

    thinking = [d for d in deltas if d.get("reasoning")]
    assert len(thinking) == 3
    assert thinking[0]["reasoning_details"][0] == {
        "type": "reasoning.text",
        "text": "Thinking",
        "format": "unknown",
        "index": 0,
    }
    first_answer = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert first_answer > deltas.index(thinking[-1])
    usage = events(body)[-2]["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 3
    assert usage["completion_tokens"] == 12

    _, hidden = await sim.post(
        {"model": "sim/reasoner", "messages": HELLO, "stream": True, "reasoning": {"exclude": True}}
    )
    assert not any(
        c["choices"][0]["delta"].get("reasoning") for c in events(hidden)[:-1] if c["choices"]
    )
    assert events(hidden)[-2]["usage"]["completion_tokens_details"]["reasoning_tokens"] == 3


async def test_tool_call_arrives_in_fragments(simulator: StartSimulator) -> None:
    sim = await simulator()
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            },
        },
    }
    payload = {"model": "sim/chat", "messages": HELLO, "stream": True, "tools": [tool]}
    _, body = await sim.post(payload)
    chunks = [c for c in events(body)[:-1] if c["choices"]]
    fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]

    assert len(fragments) > 1 and all(f["index"] == 0 for f in fragments)
    assert fragments[0]["id"].startswith("call_")
    assert fragments[0]["function"]["name"] == "get_weather"
    assert all("id" not in f and "name" not in f["function"] for f in fragments[1:])
    arguments = json.loads("".join(f["function"]["arguments"] for f in fragments))
    assert set(arguments) == {"city", "days"} and isinstance(arguments["days"], int)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

    refused, _ = await sim.post({**payload, "model": "sim/chat:free"})
    assert refused.status == 404


async def test_json_schema_answer_follows_the_schema(simulator: StartSimulator) -> None:
    sim = await simulator()
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "score": {"type": "number"}},
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    _, body = await sim.post(
        {"model": "sim/structured", "messages": HELLO, "response_format": response_format}
    )
    document = json.loads(json.loads(body)["choices"][0]["message"]["content"])
    assert set(document) == {"title", "score"} and isinstance(document["score"], float)


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    simulator: StartSimulator,
) -> None:
    sim = await simulator()
    deltas = await collect(sim, ChatRequest(model="sim/chat", messages=HELLO, max_tokens=4))
    assert len("".join(d.content for d in deltas).split()) == 4
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens == 4
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["length"]


async def test_429_carries_retry_after_to_the_client(simulator: StartSimulator) -> None:
    sim = await simulator()
    says = [{"role": "user", "content": "Hello [simulate error=429 retry-after=2]"}]
    with pytest.raises(ProviderRateLimited) as raised:
        await collect(sim, ChatRequest(model="sim/chat", messages=says))
    assert raised.value.retry_after == 2.0

    response, body = await sim.post(
        {"model": "sim/chat", "messages": HELLO}, **{"X-Simulate": "error=503"}
    )
    assert response.status == 503 and json.loads(body)["error"]["code"] == 503


async def test_in_band_error_mid_stream_ends_the_answer(simulator: StartSimulator) -> None:
    sim = await simulator(tokens=10)
    says = [{"role": "user", "content": "Hello [simulate error=midstream after=3]"}]
    received: list[ChatDelta] = []
    with pytest.raises(ProviderUnavailable, match="Provider disconnected unexpectedly"):
        await collect(sim, ChatRequest(model="sim/chat", messages=says), received)
    assert len("".join(d.content for d in received).split()) == 3

    _, body = await sim.post({"model": "sim/chat", "messages": says, "stream": True})
    last = events(body)[-1]
    assert last["error"]["code"] == "server_error"
    assert last["choices"][0]["finish_reason"] == "error"


async def test_error_rate_fails_requests_reproducibly_from_the_seed(
    simulator: StartSimulator,
) -> None:
    async def statuses(seed: int, error_rate: float) -> list[int]:
        sim = await simulator(seed=seed, error_rate=error_rate, tokens=2)
        found = []
        for _ in range(20):
            response, _ = await sim.post({"model": "sim/chat", "messages": HELLO})
            found.append(response.status)
        return found

    first = await statuses(7, 0.5)
    assert await statuses(7, 0.5) == first
    assert 0 < sum(status != 200 for status in first) < 20
    assert set(first) <= {200, 429, 500, 502, 503}
    assert set(await statuses(7, 0.0)) == {200}


async def test_hostile_requests_get_clear_errors(simulator: StartSimulator) -> None:
    sim = await simulator()
    unknown, body = await sim.post({"model": "nobody/nothing", "messages": HELLO})
    assert unknown.status == 400 and "not a valid model ID" in json.loads(body)["error"]["message"]
    async with sim.http.post(
        f"{sim.running.base_url}/chat/completions", data=b"x" * (MAX_BODY_BYTES + 1)
    ) as too_big:
        assert too_big.status == 413
    async with sim.http.post(f"{sim.running.base_url}/chat/completions", data=b"[1]") as bad:
        assert bad.status == 400
    # A huge token request is capped, not obeyed.
    _, capped = await sim.post(
        {"model": "sim/chat", "messages": [{"role": "user", "content": "[simulate tokens=999999]"}]}
    )
    assert len(json.loads(capped)["choices"][0]["message"]["content"].split()) == 4096
