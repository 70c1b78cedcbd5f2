"""The SSE decoder gives the same events however the network cuts the bytes."""

from __future__ import annotations

import itertools
import json
import random

import pytest

from providers.errors import ProviderProtocolError
from providers.sse import SSEDecoder, SSEEvent

CRLF = "\r\n"


def _chunk(content: str, *, finish: str | None = None) -> str:
    return json.dumps(
        {
            "id": "gen-1",
            "provider": "OpenAI",
            "model": "openai/gpt-4o",
            "object": "chat.completion.chunk",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content},
                    "finish_reason": finish,
                }
            ],
        },
        ensure_ascii=False,
    )


USAGE = json.dumps(
    {
        "id": "gen-1",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17, "cost": 0.0001},
    }
)

# An OpenRouter stream as it appears on the wire, with CRLF line endings, a keep-alive
# comment, multi-byte characters (é is 2 bytes, the emoji 4), usage and [DONE].
OPENROUTER_STREAM = (
    f": OPENROUTER PROCESSING{CRLF}{CRLF}"
    f"data: {_chunk('')}{CRLF}{CRLF}"
    f"data: {_chunk('Café ')}{CRLF}{CRLF}"
    f": OPENROUTER PROCESSING{CRLF}{CRLF}"
    f"data: {_chunk('au lait 🥐')}{CRLF}{CRLF}"
    f"data: {_chunk('', finish='stop')}{CRLF}{CRLF}"
    f"data: {USAGE}{CRLF}{CRLF}"
    f"data: [DONE]{CRLF}{CRLF}"
).encode()

EXPECTED = [
    SSEEvent(data=_chunk("")),
    SSEEvent(data=_chunk("Café ")),
    SSEEvent(data=_chunk("au lait 🥐")),
    SSEEvent(data=_chunk("", finish="stop")),
    SSEEvent(data=USAGE),
    SSEEvent(data="[DONE]"),
]


def decode(*chunks: bytes, max_event_bytes: int = 8 * 1024 * 1024) -> list[SSEEvent]:
    decoder = SSEDecoder(provider="openrouter", max_event_bytes=max_event_bytes)
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_whole_stream_decodes_to_data_events_only() -> None:
    events = decode(OPENROUTER_STREAM)

    assert events == EXPECTED
    assert [event.is_done for event in events] == [False] * 5 + [True]
    assert json.loads(events[2].data)["choices"][0]["delta"]["content"] == "au lait 🥐"


def test_every_two_way_split_gives_the_same_events() -> None:
    for position in range(len(OPENROUTER_STREAM) + 1):
        events = decode(OPENROUTER_STREAM[:position], OPENROUTER_STREAM[position:])
        assert events == EXPECTED, f"split at byte {position}"


def test_byte_by_byte_gives_the_same_events() -> None:
    chunks = [OPENROUTER_STREAM[i : i + 1] for i in range(len(OPENROUTER_STREAM))]

    assert decode(*chunks) == EXPECTED


def test_random_multi_way_splits_give_the_same_events() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(OPENROUTER_STREAM)), 7))
        bounds = [0, *cuts, len(OPENROUTER_STREAM)]
        chunks = [OPENROUTER_STREAM[a:b] for a, b in itertools.pairwise(bounds)]
        assert decode(*chunks) == EXPECTED, f"cuts at {cuts}"


# The same stream with LF line endings only, as most servers send it (the decoder
# splits such chunks without its CR-aware line search).
LF_STREAM = OPENROUTER_STREAM.replace(b"\r\n", b"\n")


def test_lf_only_stream_gives_the_same_events_however_it_is_cut() -> None:
    for position in range(len(LF_STREAM) + 1):
        assert decode(LF_STREAM[:position], LF_STREAM[position:]) == EXPECTED, position
    assert decode(*[LF_STREAM[i : i + 1] for i in range(len(LF_STREAM))]) == EXPECTED
    rng = random.Random(99)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(LF_STREAM)), 7))
        bounds = [0, *cuts, len(LF_STREAM)]
        chunks = [LF_STREAM[a:b] for a, b in itertools.pairwise(bounds)]
        assert decode(*chunks) == EXPECTED, f"cuts at {cuts}"


def test_chunks_with_and_without_cr_mix_in_one_stream() -> None:
    assert decode(b"data: a\r", b"\ndata: b\n", b"\nevent: x\rdata: c\n\n", b"data: d\n\n") == [
        SSEEvent(data="a\nb"),
        SSEEvent(data="c", event="x"),
        SSEEvent(data="d"),
    ]


def test_every_field_is_read_from_lf_only_chunks() -> None:
    stream = (
        b"\xef\xbb\xbfdata: bom\n\n:c\nevent: e\nid: 3\nretry: 9\nfoo: 1\ndata:x\ndata: \xff\n\n"
    )
    decoder = SSEDecoder(provider="openrouter")

    assert decoder.feed(stream) == [
        SSEEvent(data="bom"),
        SSEEvent(data="x\n\ufffd", event="e", id="3", retry=9),
    ]
    assert decoder.unknown_lines == 1


def test_oversized_line_completed_by_an_lf_only_chunk_is_refused() -> None:
    decoder = SSEDecoder(provider="openrouter", max_event_bytes=1024)
    decoder.feed(b"data: " + b"x" * 900)

    with pytest.raises(ProviderProtocolError, match="larger than 1024 bytes"):
        decoder.feed(b"x" * 200 + b"\n\n")


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    # Were the LF read as a second (empty) line, "a" and "b" would be two events.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEEvent(data="a\nb")]


@pytest.mark.parametrize("newline", [b"\n", b"\r", b"\r\n"])
def test_each_line_ending_style_is_understood(newline: bytes) -> None:
    stream = newline.join([b"data: one", b"", b"data: two", b"data: lines", b"", b""])

    assert decode(stream) == [SSEEvent(data="one"), SSEEvent(data="two\nlines")]


def test_event_name_id_and_retry_fields() -> None:
    stream = b"event: ping\nid: 7\nretry: 1500\ndata: {}\n\ndata: next\n\n"

    assert decode(stream) == [
        SSEEvent(data="{}", event="ping", id="7", retry=1500),
        # The last event id persists; the event name does not.
        SSEEvent(data="next", event="message", id="7", retry=1500),
    ]


def test_value_loses_exactly_one_leading_space() -> None:
    assert decode(b"data:x\n\ndata:  y\n\ndata\n\n") == [
        SSEEvent(data="x"),
        SSEEvent(data=" y"),
        SSEEvent(data=""),
    ]


def test_comment_only_blocks_and_unknown_fields_produce_no_event() -> None:
    assert decode(b": OPENROUTER PROCESSING\n\nfoo: bar\n\n:\n\n") == []


def test_leading_byte_order_mark_is_ignored() -> None:
    assert decode(b"\xef\xbb\xbfdata: hi\n\n") == [SSEEvent(data="hi")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert decode(b"data: a\xffb\n\n") == [SSEEvent(data="a\ufffdb")]


def test_final_event_without_blank_line_is_flushed_on_close() -> None:
    assert decode(b"data: one\n\ndata: tail") == [SSEEvent(data="one"), SSEEvent(data="tail")]
    assert decode(b"data: tail\r\n") == [SSEEvent(data="tail")]


def test_lines_far_longer_than_64_kib_arrive_whole() -> None:
    payload = "é" * 300_000  # 600 KB on the wire
    stream = f"data: {payload}\n\ndata: after\n\n".encode()
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]

    assert decode(*chunks) == [SSEEvent(data=payload), SSEEvent(data="after")]


def test_oversized_unterminated_line_is_refused_before_it_is_buffered_whole() -> None:
    decoder = SSEDecoder(provider="openrouter", max_event_bytes=1024)
    decoder.feed(b"data: " + b"x" * 900)

    with pytest.raises(ProviderProtocolError, match="larger than 1024 bytes") as info:
        decoder.feed(b"x" * 200)
    assert info.value.provider == "openrouter"


def test_oversized_multi_line_event_is_refused() -> None:
    lines = b"".join(b"data: " + b"y" * 100 + b"\n" for _ in range(20))

    with pytest.raises(ProviderProtocolError):
        decode(lines, max_event_bytes=1024)


def test_size_cap_is_per_event_not_per_stream() -> None:
    event = b"data: " + b"z" * 600 + b"\n\n"

    assert len(decode(event * 50, max_event_bytes=1024)) == 50
