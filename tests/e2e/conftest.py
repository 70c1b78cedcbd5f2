"""End to end: the real app under uvicorn, its real OpenAI-compatible clients, and a fake
upstream on loopback that answers in OpenRouter's and Hugging Face's wire format.

Nothing is swapped in process: a request goes frontend -> HTTP/websocket -> GraphQL ->
resolvers -> provider client -> HTTP -> `FakeUpstream`, and the answer all the way back,
with the catalog read from the fake's `GET /models` listings (with `supported_parameters`
and cache/reasoning prices) and history and usage in the session's embedded MongoDB.

`gateway()` starts the app; `chunk()` and `sse()` build OpenRouter-shaped stream chunks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.streaming.conftest import store
from tests.support.fake_upstream import FakeUpstream, Raw, Reply
from tests.support.server import RunningApp, StartApp

# Per token, as OpenRouter lists them; the gateway keeps them per million.
THINKER_UPSTREAM = "acme/thinker-1"
THINKER = f"openrouter:{THINKER_UPSTREAM}"
JSON_ONLY_UPSTREAM = "acme/json-object-only"
JSON_ONLY = f"openrouter:{JSON_ONLY_UPSTREAM}"
BACKUP_UPSTREAM = "acme/backup"
BACKUP = f"openrouter:{BACKUP_UPSTREAM}"
QWEN_UPSTREAM = "Qwen/Qwen3-8B"
QWEN = f"huggingface:{QWEN_UPSTREAM}"

_AGENT_PARAMETERS = [
    "max_tokens",
    "temperature",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "include_reasoning",
    "response_format",
    "structured_outputs",
]


def _openrouter_entry(
    upstream_id: str, parameters: list[str], pricing: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": upstream_id,
        "name": upstream_id,
        "context_length": 200_000,
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "pricing": pricing,
        "top_provider": {"context_length": 200_000, "max_completion_tokens": 64_000},
        "supported_parameters": parameters,
    }


OPENROUTER_LISTING = {
    "data": [
        _openrouter_entry(
            THINKER_UPSTREAM,
            _AGENT_PARAMETERS,
            {
                "prompt": "0.000002",  # 2 USD per million
                "completion": "0.000008",  # 8
                "input_cache_read": "0.0000005",  # 0.5
                "input_cache_write": "0.0000025",  # 2.5
                "internal_reasoning": "0.00001",  # 10
                "request": "0",
                "image": "0",
            },
        ),
        # `response_format` (JSON object mode) but no `structured_outputs` (JSON schema).
        _openrouter_entry(
            JSON_ONLY_UPSTREAM,
            ["max_tokens", "temperature", "response_format"],
            {"prompt": "0.000001", "completion": "0.000002", "request": "0"},
        ),
        _openrouter_entry(
            BACKUP_UPSTREAM,
            _AGENT_PARAMETERS,
            {"prompt": "0.000001", "completion": "0.000004", "request": "0"},
        ),
    ]
}
HUGGINGFACE_LISTING = {
    "object": "list",
    "data": [
        {
            "id": QWEN_UPSTREAM,
            "object": "model",
            "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
            "providers": [
                {
                    "provider": "novita",
                    "status": "live",
                    "context_length": 40960,
                    "pricing": {"input": 0.05, "output": 0.2},
                    "supports_tools": True,
                    "supports_structured_output": True,
                },
                {
                    "provider": "nscale",
                    "status": "live",
                    "context_length": 32768,
                    "pricing": {"input": 0.08, "output": 0.3},
                    "supports_tools": True,
                    "supports_structured_output": False,
                },
            ],
        }
    ],
}


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    finish_reason: str | None = None,
    id: str = "gen-chunk-1",
    model: str = THINKER_UPSTREAM,
    **fields: Any,
) -> Raw:
    """One OpenRouter stream chunk with one choice (its `delta`), as raw SSE bytes."""
    payload: dict[str, Any] = {
        "id": id,
        "object": "chat.completion.chunk",
        "created": 1764633600,
        "model": model,
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason}],
        **fields,
    }
    return sse(payload)


def sse(payload: dict[str, Any]) -> Raw:
    return Raw(f"data: {json.dumps(payload)}\n\n".encode())


def usage_chunk(usage: dict[str, Any], *, model: str = THINKER_UPSTREAM) -> Raw:
    """OpenRouter's last chunk: the usage, with a choice whose delta is empty."""
    return chunk({"role": "assistant", "content": ""}, model=model, usage=usage)


KEEPALIVE = Raw(b": OPENROUTER PROCESSING\n\n")

# The app's database, read directly (usage records are in no API field but `usage`).
__all__ = ["store"]

Gateway = Callable[..., Awaitable[RunningApp]]


@pytest.fixture
def fake(upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream, listing this directory's models for both providers."""
    upstream.set("/openrouter/models", Reply(body=OPENROUTER_LISTING, close=True))
    upstream.set("/hf/models", Reply(body=HUGGINGFACE_LISTING, close=True))
    return upstream


@pytest.fixture
def gateway(fake: FakeUpstream, start_app: StartApp) -> Gateway:
    async def start(**overrides: Any) -> RunningApp:
        settings: dict[str, Any] = {
            "AIPASTA_CHAT_RETRY_BACKOFF": 0,
            # One delta per upstream chunk, so a test sees each piece as sent.
            "AIPASTA_STREAM_COALESCE_MS": 0,
            **overrides,
        }
        return await start_app(**settings)

    return start


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data
