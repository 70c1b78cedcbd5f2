"""Reading what upstreams answer beyond text: reasoning (OpenRouter's and the DeepSeek/vLLM
shape), tool calls (streamed in interleaved pieces, or whole), usage details, generation
ids, and garbage in any of those."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from providers.chat import ChatDelta, ChatRequest, TokenUsage, ToolCall, ToolCallAssembler
from providers.completion import MAX_REASONING_DETAILS, stream_delta, whole_answer
from providers.errors import ProviderProtocolError
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.payload import Dialect
from providers.sse import SSEDecoder
from tests.support.fake_upstream import FakeUpstream, Raw, Reply, steps

MODEL = "org/thinker"
REQUEST = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Weather?"}])
TIMEOUTS = ChatTimeouts(connect=2.0, first_token=5.0, idle=5.0, total=10.0)
DONE = b"data: [DONE]\n\n"
KEEPALIVE = b": OPENROUTER PROCESSING\n\n"
SSE = {"Content-Type": "text/event-stream"}


def sse(document: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(document, ensure_ascii=False)}\n\n".encode()


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    response_id: str = "gen-1764680000-abc",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": response_id,
        "model": "org/thinker-2026",
        "object": "chat.completion.chunk",
        "choices": [
            {"index": 0, "delta": {"role": "assistant", **(delta or {})}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


def client(
    session: aiohttp.ClientSession, base_url: str, dialect: Dialect = Dialect.OPENROUTER
) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        session,
        name=dialect.value,
        base_url=base_url,
        api_key=SecretStr("sk-test"),
        timeouts=TIMEOUTS,
        dialect=dialect,
    )


async def run(
    upstream: FakeUpstream, wire: bytes | Sequence[bytes], dialect: Dialect = Dialect.OPENROUTER
) -> list[ChatDelta]:
    pieces = [wire] if isinstance(wire, bytes) else list(wire)
    upstream.script(MODEL, steps(*(Raw(piece) for piece in pieces), done=False))
    async with aiohttp.ClientSession() as session:
        return [d async for d in client(session, upstream.url("v1"), dialect).stream_chat(REQUEST)]


async def run_reply(
    upstream: FakeUpstream, reply: Reply, dialect: Dialect = Dialect.OPENROUTER
) -> list[ChatDelta]:
    upstream.script(MODEL, reply)
    async with aiohttp.ClientSession() as session:
        return [d async for d in client(session, upstream.url("v1"), dialect).stream_chat(REQUEST)]


def assembled(deltas: Sequence[ChatDelta]) -> tuple[ToolCall, ...]:
    assembler = ToolCallAssembler()
    for delta in deltas:
        assembler.add(delta.tool_calls)
    return assembler.calls()


# --- reasoning --------------------------------------------------------------------------

DETAIL_1 = {
    "type": "reasoning.text",
    "text": "The user ",
    "format": "anthropic-claude-v1",
    "index": 0,
}
DETAIL_2 = {
    "type": "reasoning.text",
    "text": "wants weather.",
    "signature": "sig==",
    "format": "anthropic-claude-v1",
    "index": 0,
}
ENCRYPTED = {
    "type": "reasoning.encrypted",
    "data": "b64==",
    "id": "rs_1",
    "format": "openai",
    "index": 1,
}
OPENROUTER_USAGE = {
    "prompt_tokens": 1200,
    "completion_tokens": 300,
    "total_tokens": 1500,
    "cost": 0.00417,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 1000, "cache_write_tokens": 150, "audio_tokens": 0},
    "cost_details": {"upstream_inference_cost": None},
    "completion_tokens_details": {"reasoning_tokens": 120},
}
EXPECTED_USAGE = TokenUsage(
    prompt_tokens=1200,
    completion_tokens=300,
    total_tokens=1500,
    cost=Decimal("0.00417"),
    reasoning_tokens=120,
    cached_prompt_tokens=1000,
    cache_write_tokens=150,
)


async def test_reasoning_streamed_in_openrouters_shape(upstream: FakeUpstream) -> None:
    wire = b"".join(
        [
            KEEPALIVE,
            sse(chunk({"content": ""})),  # role only: no event
            sse(chunk({"content": "", "reasoning": "The user ", "reasoning_details": [DETAIL_1]})),
            KEEPALIVE,
            sse(
                chunk(
                    {
                        "content": None,
                        "reasoning": "wants weather.",
                        "reasoning_details": [DETAIL_2],
                    }
                )
            ),
            sse(chunk({"reasoning": None, "reasoning_details": [ENCRYPTED]})),
            sse(chunk({"content": "Sunny."})),
            sse(chunk({"content": ""}, finish="stop")),
            # OpenRouter's usage chunk carries a choice with an empty delta.
            sse(chunk({"content": ""}, usage=OPENROUTER_USAGE)),
            DONE,
        ]
    )

    deltas = await run(upstream, wire)

    assert "".join(d.reasoning for d in deltas) == "The user wants weather."
    assert [detail for d in deltas for detail in d.reasoning_details] == [
        DETAIL_1,
        DETAIL_2,
        ENCRYPTED,
    ]
    assert "".join(d.content for d in deltas) == "Sunny."
    # One event per chunk that carries something; the usage is not lost.
    assert len(deltas) == 6
    assert [d.finish_reason for d in deltas] == [None, None, None, None, "stop", None]
    assert deltas[-1].usage == EXPECTED_USAGE
    # OpenRouter's chunk id names the generation, on every delta.
    assert {d.generation_id for d in deltas} == {"gen-1764680000-abc"}


async def test_reasoning_streamed_as_reasoning_content(upstream: FakeUpstream) -> None:
    """The DeepSeek / vLLM shape, from a generic OpenAI-compatible server."""
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 50,
        "total_tokens": 70,
        "prompt_tokens_details": {"cached_tokens": 16},
        "completion_tokens_details": {"reasoning_tokens": 40},
    }
    wire = b"".join(
        [
            sse(chunk({"reasoning_content": "Hmm, "}, response_id="chatcmpl-9")),
            sse(chunk({"reasoning_content": "rain."}, response_id="chatcmpl-9")),
            sse(chunk({"content": "Take an umbrella."}, response_id="chatcmpl-9")),
            sse(chunk(finish="stop", usage=usage, response_id="chatcmpl-9")),
            DONE,
        ]
    )

    deltas = await run(upstream, wire, Dialect.OPENAI)

    assert [d.reasoning for d in deltas] == ["Hmm, ", "rain.", "", ""]
    assert "".join(d.content for d in deltas) == "Take an umbrella."
    assert deltas[-1].usage == TokenUsage(
        prompt_tokens=20,
        completion_tokens=50,
        total_tokens=70,
        reasoning_tokens=40,
        cached_prompt_tokens=16,
    )
    # A chat-completion id is not a generation id.
    assert {d.generation_id for d in deltas} == {None}
    assert {d.response_id for d in deltas} == {"chatcmpl-9"}


async def test_generation_id_header_names_the_generation(upstream: FakeUpstream) -> None:
    wire = sse(chunk({"content": "ok"}, finish="stop")) + DONE
    for dialect in (Dialect.OPENROUTER, Dialect.HUGGINGFACE):
        headers = {**SSE, "X-Generation-Id": f"gen-header-{dialect.value}"}
        deltas = await run_reply(upstream, Reply(raw=wire, headers=headers), dialect)
        assert [d.generation_id for d in deltas] == [f"gen-header-{dialect.value}"]


async def test_a_garbage_generation_id_header_is_ignored(upstream: FakeUpstream) -> None:
    wire = sse(chunk({"content": "ok"}, finish="stop")) + DONE
    headers = {**SSE, "X-Generation-Id": "x" * 5000}
    deltas = await run_reply(upstream, Reply(raw=wire, headers=headers))
    assert [d.generation_id for d in deltas] == ["gen-1764680000-abc"]


WHOLE_TOOL_CALLS = [
    {
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'},
    },
    {
        "index": 1,
        "id": "call_b",
        "type": "function",
        # Some servers (Ollama) send arguments as an object.
        "function": {"name": "get_time", "arguments": {"tz": "Europe/Zurich"}},
    },
]


async def test_whole_answer_in_openrouters_shape(upstream: FakeUpstream) -> None:
    body = {
        "id": "gen-whole-1",
        "model": "org/thinker-2026",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning": "Two lookups.",
                    "reasoning_details": [DETAIL_2, ENCRYPTED],
                    "tool_calls": WHOLE_TOOL_CALLS,
                },
            }
        ],
        "usage": OPENROUTER_USAGE,
    }

    (delta,) = await run_reply(upstream, Reply(body=body))

    assert delta.content == ""
    assert delta.reasoning == "Two lookups."
    assert delta.reasoning_details == (DETAIL_2, ENCRYPTED)
    assert delta.finish_reason == "tool_calls"
    assert [(f.index, f.id, f.name) for f in delta.tool_calls] == [
        (0, "call_a", "get_weather"),
        (1, "call_b", "get_time"),
    ]
    assert assembled([delta]) == (
        ToolCall("call_a", "get_weather", '{"city": "Zürich"}'),
        ToolCall("call_b", "get_time", '{"tz":"Europe/Zurich"}'),
    )
    assert delta.usage == EXPECTED_USAGE
    assert delta.generation_id == "gen-whole-1"


async def test_whole_answer_in_openais_shape(upstream: FakeUpstream) -> None:
    body = {
        "id": "chatcmpl-7",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "42", "reasoning_content": "6 x 7"},
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 30,
            "total_tokens": 39,
            "completion_tokens_details": {"reasoning_tokens": 28},
        },
    }

    (delta,) = await run_reply(upstream, Reply(body=body), Dialect.OPENAI)

    assert (delta.content, delta.reasoning, delta.finish_reason) == ("42", "6 x 7", "stop")
    assert delta.usage == TokenUsage(9, 30, 39, reasoning_tokens=28)
    assert delta.tool_calls == ()
    assert delta.generation_id is None


# --- two parallel tool calls, interleaved, split anywhere --------------------------------

ARGS_A = '{"city": "Zürich 🌧", "unit": "celsius", "note": "say \\"hi\\""}'
ARGS_B = '{"query": "naïve café\\nmenu", "limit": 3}'


def tool_wire() -> bytes:
    """Two calls whose argument pieces interleave by `index`, OpenAI's way: id and name
    on the first piece of each, arguments cut mid-character-sequence and mid-escape."""

    def piece(index: int, arguments: str, first: tuple[str, str] | None = None) -> bytes:
        fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
        if first is not None:
            fragment["id"], fragment["function"]["name"] = first
            fragment["type"] = "function"
        return sse(chunk({"content": None, "tool_calls": [fragment]}))

    a = [ARGS_A[i : i + 7] for i in range(0, len(ARGS_A), 7)]
    b = [ARGS_B[i : i + 5] for i in range(0, len(ARGS_B), 5)]
    events = [
        sse(chunk({"content": "", "reasoning": "Both at once."})),
        piece(0, "", ("call_weather", "get_weather")),
        piece(1, b[0], ("call_search", "search_menu")),
    ]
    for i in range(max(len(a), len(b))):
        if i < len(a):
            events.append(piece(0, a[i]))
        if i + 1 < len(b):
            events.append(piece(1, b[i + 1]))
    # One chunk may also carry pieces of both calls.
    both = {"content": None, "tool_calls": [{"index": 0, "function": {"arguments": ""}}]}
    events.append(sse(chunk(both)))
    events.append(sse(chunk({}, finish="tool_calls")))
    events.append(sse(chunk({}, usage=OPENROUTER_USAGE)))
    events.append(DONE)
    return b"".join(events)


EXPECTED_CALLS = (
    ToolCall("call_weather", "get_weather", ARGS_A),
    ToolCall("call_search", "search_menu", ARGS_B),
)


def decoded_deltas(pieces: Sequence[bytes]) -> list[ChatDelta]:
    """What the client makes of the stream delivered in `pieces`."""
    decoder = SSEDecoder(provider="openrouter")
    events = [event for piece in pieces for event in decoder.feed(piece)] + decoder.close()
    deltas = []
    for event in events:
        if event.is_done:
            break
        delta = stream_delta(json.loads(event.data), provider="openrouter")
        if delta is not None:
            deltas.append(delta)
    return deltas


def test_two_parallel_tool_calls_split_at_every_byte_boundary() -> None:
    wire = tool_wire()
    for cut in range(1, len(wire)):
        deltas = decoded_deltas([wire[:cut], wire[cut:]])
        assert assembled(deltas) == EXPECTED_CALLS, f"cut at byte {cut}"
        assert deltas[-2].finish_reason == "tool_calls"


async def test_two_parallel_tool_calls_delivered_one_byte_at_a_time(
    upstream: FakeUpstream,
) -> None:
    wire = tool_wire()

    deltas = await run(upstream, [wire[i : i + 1] for i in range(len(wire))])

    assert assembled(deltas) == EXPECTED_CALLS
    assert "".join(d.reasoning for d in deltas) == "Both at once."
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["tool_calls"]
    assert deltas[-1].usage == EXPECTED_USAGE
    # Every piece is an event of its own, but none is empty.
    assert all(d.tool_calls or d.reasoning or d.finish_reason or d.usage for d in deltas)


# --- garbage ---------------------------------------------------------------------------


def delta_of(delta: dict[str, Any], **fields: Any) -> ChatDelta | None:
    body = chunk(delta)
    body.update(fields)
    return stream_delta(body, provider="openrouter")


@pytest.mark.parametrize(
    "garbage",
    [
        {"reasoning": 42},
        {"reasoning": ["a"], "reasoning_content": {"x": 1}},
        {"reasoning_details": "text"},
        {"reasoning_details": [1, "two", None]},
        {"tool_calls": "call"},
        {"tool_calls": [1, None, "x"]},
        {"tool_calls": {"index": 0}},
    ],
)
def test_garbage_reasoning_and_tool_calls_make_no_event(garbage: dict[str, Any]) -> None:
    assert delta_of(garbage) is None


def test_tool_call_pieces_with_wrong_types_keep_what_is_usable() -> None:
    delta = delta_of(
        {
            "tool_calls": [
                {"index": 0, "id": 7, "function": {"name": ["x"], "arguments": 3.5}},
                {"index": 1, "id": "call_" + "z" * 10_000, "function": "nope"},
            ]
        }
    )
    assert delta is not None
    first, second = delta.tool_calls
    assert (first.index, first.id, first.name, first.arguments) == (0, None, None, "")
    assert second.index == 1
    assert second.id is not None and len(second.id) == 256


@pytest.mark.parametrize("index", ["0", -1, 10**9, True, 1.5, None])
def test_a_tool_call_piece_with_a_malformed_index_is_a_protocol_error(index: object) -> None:
    with pytest.raises(ProviderProtocolError):
        delta_of({"tool_calls": [{"index": index, "function": {"arguments": "{}"}}]})


def test_a_tool_call_without_index_takes_its_position() -> None:
    delta = delta_of({"tool_calls": [{"id": "a"}, {"id": "b"}]})
    assert delta is not None
    assert [(f.index, f.id) for f in delta.tool_calls] == [(0, "a"), (1, "b")]


def test_reasoning_details_are_bounded_in_count() -> None:
    details = [{"type": "reasoning.text", "text": str(n)} for n in range(10_000)]
    delta = delta_of({"reasoning_details": details})
    assert delta is not None
    assert list(delta.reasoning_details) == details[:MAX_REASONING_DETAILS]


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens_details": "many", "completion_tokens_details": [1]},
        {"prompt_tokens_details": {"cached_tokens": "9", "cache_write_tokens": -3}},
        {"completion_tokens_details": {"reasoning_tokens": 10**30}},
        {"prompt_tokens_details": {"cached_tokens": True}},
    ],
)
def test_garbage_usage_details_count_nothing(usage: dict[str, Any]) -> None:
    delta = delta_of({}, usage={"prompt_tokens": 5, "completion_tokens": 2, **usage})
    assert delta is not None
    assert delta.usage == TokenUsage(prompt_tokens=5, completion_tokens=2, total_tokens=7)


def test_a_whole_answer_with_garbage_fields_keeps_its_text() -> None:
    answer = {
        "choices": [
            {
                "message": {
                    "content": "hi",
                    "reasoning": 1,
                    "reasoning_details": {"a": 1},
                    "tool_calls": "x",
                }
            }
        ],
        "usage": {"completion_tokens_details": None},
    }
    delta = whole_answer(answer, provider="openai")
    assert (delta.content, delta.reasoning, delta.reasoning_details, delta.tool_calls) == (
        "hi",
        "",
        (),
        (),
    )
    assert delta.finish_reason == "stop"


async def test_a_malformed_tool_call_index_fails_the_stream_clearly(upstream: FakeUpstream) -> None:
    wire = sse(chunk({"tool_calls": [{"index": "first", "function": {"arguments": "{"}}]})) + DONE
    with pytest.raises(ProviderProtocolError, match="tool call"):
        await run(upstream, wire)


def test_a_text_chunk_with_null_or_unknown_fields_keeps_its_text_model_and_id() -> None:
    delta = delta_of({"content": "Hi", "refusal": None, "reasoning": None}, model="m/x", id="g-1")

    assert delta == ChatDelta(content="Hi", upstream_model="m/x", response_id="g-1")


def test_a_text_chunk_with_text_parts_or_a_wrong_type() -> None:
    assert delta_of({"content": [{"type": "text", "text": "a"}, {"text": "b"}]}) == ChatDelta(
        content="ab", upstream_model=chunk({})["model"], response_id=chunk({})["id"]
    )
    assert delta_of({"role": "assistant", "content": 5}) is None
    assert delta_of({"role": "assistant", "content": ""}, usage="x") is None
