"""Incremental Server-Sent-Events decoder.

Bytes go in as the network delivers them, complete events come out. We split lines
ourselves instead of using aiohttp's line reader because upstreams send single `data:`
lines far longer than its 64 KiB line limit (long completions, base64 images), and we
want a hard cap on one event's size instead.

Lines are split on raw bytes: CR and LF never occur inside a UTF-8 multi-byte
sequence, so a character split across two chunks is simply reassembled before the
line is decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from providers.errors import ProviderProtocolError

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(slots=True)
class SSEEvent:
    """One dispatched event; `data` joins multi-line `data:` fields with newlines.

    (Not frozen: a frozen dataclass takes three times as long to build, and one is built
    per event; nothing changes one after it is dispatched.)
    """

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def is_done(self) -> bool:
        """The OpenAI-style end-of-stream sentinel, which is not JSON."""
        return self.data.strip() == "[DONE]"


class SSEDecoder:
    """Feed raw chunks with `feed()`, then call `close()` once at end of stream."""

    def __init__(self, *, provider: str, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._provider = provider
        self._max_event_bytes = max_event_bytes
        self._line = bytearray()
        # A chunk ending in CR may be the first half of CRLF; the LF, if it comes
        # first in the next chunk, must not be read as an extra (event-ending) line.
        self._skip_lf = False
        self._at_stream_start = True
        self._data: list[str] = []
        self._event_bytes = 0
        self._event_name = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self._closed = False
        # Lines that are neither blank, a comment nor a known field: ignored, as the
        # spec says, but counted so a body of nothing else can be told from a stream.
        self.unknown_lines = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._closed:
            raise RuntimeError("SSEDecoder.feed() called after close()")
        events: list[SSEEvent] = []
        start = 0
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                start = 1
        if b"\r" not in chunk:
            # The common case (LF line ends only): split at once, no regex, no copies.
            self._feed_lf(chunk[start:] if start else chunk, events)
            return events
        for match in _LINE_END.finditer(chunk, start):
            self._line += chunk[start : match.start()]
            self._check_size()
            line = bytes(self._line)
            self._line.clear()
            self._handle_line(line, events)
            start = match.end()
            if match.group() == b"\r" and start == len(chunk):
                self._skip_lf = True
        self._line += chunk[start:]
        self._check_size()
        return events

    def _feed_lf(self, chunk: bytes, events: list[SSEEvent]) -> None:
        """`feed()` of a chunk without CR: the same lines, sizes and events."""
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if lines and self._line:
            self._line += lines[0]
            self._check_size()
            lines[0] = bytes(self._line)
            self._line.clear()
        limit = self._max_event_bytes
        for line in lines:
            if self._event_bytes + len(line) > limit:
                self._line += line
                self._check_size()
            if self._at_stream_start:
                self._handle_line(line, events)
            elif line[:6] == b"data: ":
                # What _handle_line does with a `data: ` line (the prefix is ASCII, so
                # decoding the rest alone gives the same text).
                self._data.append(line[6:].decode("utf-8", errors="replace"))
                self._event_bytes += len(line)
            elif not line:
                self._dispatch(events)
            else:
                self._handle_line(line, events)
        self._line += tail
        self._check_size()

    def close(self) -> list[SSEEvent]:
        """Flush a last line and event that the server did not terminate."""
        if self._closed:
            return []
        self._closed = True
        events: list[SSEEvent] = []
        if self._line:
            line = bytes(self._line)
            self._line.clear()
            self._handle_line(line, events)
        self._dispatch(events)
        return events

    def _check_size(self) -> None:
        if self._event_bytes + len(self._line) > self._max_event_bytes:
            # Drop what we hold so memory is released even if the caller keeps us.
            self._line.clear()
            self._data.clear()
            raise ProviderProtocolError(
                f"upstream sent a stream event larger than {self._max_event_bytes} bytes",
                provider=self._provider,
            )

    def _handle_line(self, raw: bytes, events: list[SSEEvent]) -> None:
        line = raw.decode("utf-8", errors="replace")
        if self._at_stream_start:
            self._at_stream_start = False
            line = line.removeprefix(_BOM)
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._event_bytes += len(raw)
        elif field == "event":
            self._event_name = value
        elif field == "id" and "\0" not in value:
            # (The spec ignores ids containing NUL: they could not be sent back.)
            self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        elif field not in ("id", "retry"):
            # Unknown fields are ignored, as the spec requires.
            self.unknown_lines += 1

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(
                SSEEvent(
                    data=self._data[0] if len(self._data) == 1 else "\n".join(self._data),
                    event=self._event_name or "message",
                    id=self._last_id,
                    retry=self._retry,
                )
            )
        self._data = []
        self._event_bytes = 0
        self._event_name = ""
