"""CPU of reading one upstream answer: SSE decoding and delta parsing, in-process.

Builds a 50-token answer in the shape `aipasta simulate-upstream` (and OpenRouter)
streams it: a keep-alive comment, 50 content chunks, a finish chunk, a usage chunk and
`[DONE]`. Decodes it with `providers.sse.SSEDecoder` and turns each data event into a
`ChatDelta` the way `OpenAICompatibleClient.stream_chat` does, with the network cut
one event per chunk and as one chunk, and prints the process CPU per answer. No
network, no event loop: the figures repeat within a few per cent on a busy machine.

    .venv/bin/python bench/chat_parse.py [--tokens 50] [--answers 2000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from providers.chat import ChatDelta
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.payload import Dialect
from providers.sse import SSEDecoder


def answer(tokens: int) -> list[bytes]:
    """The answer's wire bytes, one SSE event per item."""
    head: dict[str, Any] = {"id": "gen-1-759a67660a0b75cff88d", "model": "sim/chat"}
    head["provider"] = "Simulator"
    head |= {"object": "chat.completion.chunk", "created": 1796221283}

    def chunk(content: str, finish: str | None = None) -> bytes:
        choice = {
            "index": 0,
            "delta": {"role": "assistant", "content": content},
            "finish_reason": finish,
            "native_finish_reason": finish,
            "logprobs": None,
        }
        return b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n"

    usage = {
        "prompt_tokens": 4,
        "completion_tokens": tokens,
        "total_tokens": tokens + 4,
        "cost": 7.7e-05,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    return [
        b": OPENROUTER PROCESSING\n\n",
        *(chunk(f" word{i}") for i in range(tokens)),
        chunk("", "stop"),
        b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n",
        b"data: [DONE]\n\n",
    ]


def decode_only(chunks: list[bytes]) -> int:
    decoder = SSEDecoder(provider="openrouter")
    return sum(len(decoder.feed(chunk)) for chunk in chunks)


CLIENT = OpenAICompatibleClient(
    None,  # type: ignore[arg-type]  # no request is sent
    name="openrouter",
    base_url="http://127.0.0.1",
    api_key=None,
    timeouts=ChatTimeouts(),
    dialect=Dialect.OPENROUTER,
)


def decode_and_parse(chunks: list[bytes]) -> list[ChatDelta]:
    """What stream_chat does with the bytes, without the network and timers."""
    decoder = SSEDecoder(provider="openrouter")
    generation_id: str | None = None
    deltas: list[ChatDelta] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            if event.is_done:
                return deltas
            if event.event != "message" or not event.data.strip():
                continue
            delta, generation_id = CLIENT._event_delta(event.data, generation_id)
            if delta is not None:
                deltas.append(delta)
    return deltas


def per_answer(work: Callable[[list[bytes]], object], chunks: list[bytes], answers: int) -> float:
    work(chunks)
    started = time.process_time()
    for _ in range(answers):
        work(chunks)
    return (time.process_time() - started) / answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--answers", type=int, default=2000)
    args = parser.parse_args()
    events = answer(args.tokens)
    whole = [b"".join(events)]
    deltas = decode_and_parse(events)
    assert len(deltas) == args.tokens + 2, len(deltas)
    assert decode_and_parse(whole) == deltas
    for name, work in (("SSE decoding", decode_only), ("decoding + deltas", decode_and_parse)):
        for cut, chunks in (("one event per chunk", events), ("one chunk", whole)):
            seconds = per_answer(work, chunks, args.answers)
            print(f"{name}, {cut}: {seconds * 1e6:.0f} us per {args.tokens}-token answer")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
