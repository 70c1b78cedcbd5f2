"""Streaming chat client for OpenAI-compatible `/chat/completions` endpoints.

One class serves OpenRouter, the Hugging Face router and self-hosted servers; they
differ in base URL, key, extra headers and the `Dialect` of the request body
(`providers.payload`); answers are read by `providers.completion`. The client shares
the application's aiohttp session and never owns one.

Every way a stream can end early (timeout, upstream failure, the consumer closing the
iterator or cancelling its task) goes through one `finally` that closes the upstream
response, so the connection is dropped rather than returned half-read to the pool.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import aiohttp
import orjson
from pydantic import SecretStr

from providers.chat import ChatDelta, ChatRequest
from providers.completion import (
    header_generation_id,
    plain_text,
    stream_delta,
    text_delta,
    whole_answer,
)
from providers.errors import (
    ProviderError,
    ProviderProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    error_from_payload,
    error_from_response,
)
from providers.payload import Dialect, chat_payload
from providers.pool import PoolWait
from providers.sse import DEFAULT_MAX_EVENT_BYTES, SSEDecoder

MAX_ERROR_BODY_BYTES = 64 * 1024
# After `[DONE]` only the end of the HTTP body should follow, normally in the same
# packet; waiting this briefly for it lets the connection go back to the pool.
_DRAIN_SECONDS = 0.25
_DRAIN_MAX_BYTES = 64 * 1024

_T = TypeVar("_T")
_Phase = Literal["first_token", "idle", "total"]


@dataclass(frozen=True, slots=True)
class ChatTimeouts:
    """Seconds. `first_token` runs from sending the request to the first data event;
    `idle` is the longest silence allowed after that; `total` bounds everything."""

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0


class _Expired(Exception):
    """What the clock puts into a response's stream when a read overran its deadline."""

    def __init__(self, phase: _Phase) -> None:
        super().__init__(phase)
        self.phase: _Phase = phase


class _Clock:
    """Deadlines of one request.

    Before the first data event only `first_token` (and `total`) apply: keep-alive
    comments (OpenRouter's `: OPENROUTER PROCESSING`) prove the connection is alive
    but not that the model is producing anything, so they must not satisfy it. Once
    data flows, any bytes, comments included, restart the idle timer: OpenRouter also
    sends them while a reasoning model pauses, and that pause is not a stall.

    The reads of a stream (`read`) share one timer instead of a timeout each (a timer
    set and cancelled per chunk was a tenth of a stream's CPU): it is moved only when a
    read's deadline comes before it, and when it goes off early (the deadline moved on
    since) it is set again for the deadline. One that goes off while no read waits
    waits for the next read to be set again.
    """

    def __init__(self, timeouts: ChatTimeouts) -> None:
        self._loop = asyncio.get_running_loop()
        self._timeouts = timeouts
        started = self._loop.time()
        self._total_at = started + timeouts.total
        self._first_token_at: float | None = started + timeouts.first_token
        self._timer: asyncio.TimerHandle | None = None
        self._reading: aiohttp.StreamReader | None = None
        self._deadline = 0.0
        self._phase: _Phase = "total"

    async def read(self, content: aiohttp.StreamReader) -> bytes:
        """`content.readany()` by the current deadline; past it, `_Expired` is raised."""
        self._deadline, self._phase = self.next_deadline()
        timer = self._timer
        if timer is None or timer.when() > self._deadline:
            self._set_timer()
        self._reading = content
        chunk = await content.readany()
        self._reading = None
        return chunk

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set_timer(self) -> None:
        self.stop()
        self._timer = self._loop.call_at(self._deadline, self._went_off)

    def _went_off(self) -> None:
        self._timer = None
        if self._reading is None:
            return
        if self._loop.time() < self._deadline:
            self._set_timer()
        else:
            self._reading.set_exception(_Expired(self._phase))

    def data_arrived(self) -> None:
        self._first_token_at = None

    @property
    def answering(self) -> bool:
        """Whether a data event arrived."""
        return self._first_token_at is None

    def next_deadline(self) -> tuple[float, _Phase]:
        if self._first_token_at is not None:
            if self._first_token_at < self._total_at:
                return self._first_token_at, "first_token"
            return self._total_at, "total"
        idle_at = self._loop.time() + self._timeouts.idle
        if idle_at < self._total_at:
            return idle_at, "idle"
        return self._total_at, "total"

    def describe(self, phase: _Phase) -> str:
        t = self._timeouts
        if phase == "first_token":
            return f"the upstream did not start answering within {t.first_token:g}s"
        if phase == "idle":
            return f"the upstream stream stalled for more than {t.idle:g}s"
        return f"the upstream answer took longer than {t.total:g}s"


class OpenAICompatibleClient:
    """A ChatProvider over an OpenAI-compatible HTTP API."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        name: str,
        base_url: str,
        api_key: SecretStr | None,
        extra_headers: Mapping[str, str] | None = None,
        timeouts: ChatTimeouts,
        dialect: Dialect = Dialect.OPENAI,
    ) -> None:
        self.name = name
        self.dialect = dialect
        self._session = session
        self._url = base_url.rstrip("/") + "/chat/completions"
        # Every request sends the same headers (the key does not change): built once.
        self._request_headers = {
            "Accept": "text/event-stream",
            **(extra_headers or {}),
            aiohttp.hdrs.CONTENT_TYPE: "application/json",
        }
        if api_key is not None:
            self._request_headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._timeouts = timeouts
        # Only connection setup (pool wait, DNS, TCP, TLS) is left to aiohttp; the
        # response phases are timed by _Clock so each gets its own message.
        self._client_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect, sock_connect=None, sock_read=None
        )

    def __repr__(self) -> str:
        return (
            f"OpenAICompatibleClient(name={self.name!r}, url={self._url!r}, "
            f"dialect={self.dialect.value!r})"
        )

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[ChatDelta]:
        clock = _Clock(self._timeouts)
        response: aiohttp.ClientResponse | None = None
        # Set only once the body was read to its end: then the connection may go
        # back to the pool. Anything else closes it.
        clean = False
        try:
            response = await self._post(request, clock)
            if not 200 <= response.status < 300:
                body, clean = await self._read_body(response, clock, MAX_ERROR_BODY_BYTES)
                raise error_from_response(self.name, response.status, body, response.headers)
            generation_id = header_generation_id(response.headers.get("X-Generation-Id"))

            content_type = response.headers.get(aiohttp.hdrs.CONTENT_TYPE, "").lower()
            if content_type.startswith("application/json"):
                # Some OpenAI-compatible servers ignore `stream` and answer in one piece.
                answer = await self._whole_answer(response, clock, generation_id)
                clean = True
                yield answer
                return
            self._reject_html(content_type)

            decoder = SSEDecoder(provider=self.name)
            finished = False
            while True:
                chunk = await clock.read(response.content)
                at_eof = not chunk
                events = decoder.close() if at_eof else decoder.feed(chunk)
                for event in events:
                    data = event.data
                    # A message holding a JSON object (nearly every event) is neither
                    # the end, nor an error, nor empty: it skips those checks.
                    if data[:1] != "{" or event.event != "message":
                        if event.is_done:
                            clean = await self._done(response, decoder, clock)
                            return
                        if event.event == "error":
                            raise error_from_payload(self.name, self._error_event(data))
                        if event.event != "message" or not data.strip():
                            # Named events (pings) and empty data are liveness, not an answer.
                            continue
                    clock.data_arrived()
                    delta, generation_id = self._event_delta(data, generation_id)
                    if delta is None:
                        continue
                    if delta.finish_reason is not None:
                        finished = True
                    yield delta
                if at_eof:
                    if finished:
                        clean = True
                        return
                    raise self._ended_early(decoder, clock)
        except _Expired as exc:
            raise ProviderTimeout(clock.describe(exc.phase), provider=self.name) from exc
        except aiohttp.ClientError as exc:
            # The exception text can carry URLs and socket details; the type is enough.
            raise ProviderUnavailable(
                f"connection to the upstream failed ({type(exc).__name__})", provider=self.name
            ) from exc
        finally:
            clock.stop()
            if response is not None:
                _let_go(response, clean=clean)

    async def _post(self, request: ChatRequest, clock: _Clock) -> aiohttp.ClientResponse:
        pool = PoolWait()
        return await self._within(
            clock,
            self._session.post(
                self._url,
                # The body as bytes: aiohttp's `json=` would encode it with json.dumps
                # (and wrap it in a payload object) on every request.
                data=_json_body(chat_payload(request, self.dialect)),
                headers=self._request_headers,
                timeout=self._client_timeout,
                allow_redirects=False,
                raise_for_status=False,
                trace_request_ctx=pool.context,
            ),
            pool,
        )

    async def _within(
        self, clock: _Clock, awaitable: Awaitable[_T], pool: PoolWait | None = None
    ) -> _T:
        deadline, phase = clock.next_deadline()
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError as exc:
            if pool is not None and (exhausted := pool.exhausted(self.name)) is not None:
                raise exhausted from exc
            if isinstance(exc, aiohttp.ServerTimeoutError):
                # With sock_read unset, aiohttp only times out while connecting.
                raise ProviderTimeout(
                    f"could not connect to the upstream within {self._timeouts.connect:g}s",
                    provider=self.name,
                ) from exc
            raise ProviderTimeout(clock.describe(phase), provider=self.name) from exc

    async def _read_body(
        self, response: aiohttp.ClientResponse, clock: _Clock, limit: int
    ) -> tuple[bytes, bool]:
        """Up to `limit` bytes of the body, and whether that was all of it."""
        body = bytearray()
        while len(body) < limit:
            chunk = await self._within(clock, response.content.read(limit - len(body)))
            if not chunk:
                return bytes(body), True
            body += chunk
        return bytes(body), response.content.at_eof()

    def _reject_html(self, content_type: str) -> None:
        if content_type.startswith("text/html"):
            raise ProviderProtocolError(
                "the upstream answered with an HTML page instead of a stream", provider=self.name
            )

    def _reject_junk(self, decoder: SSEDecoder, clock: _Clock) -> None:
        """A body that ends without one data event but with lines that are not SSE is
        junk (a proxy's error page, a binary blob): neither an empty answer nor a
        cut-off stream worth retrying."""
        if not clock.answering and decoder.unknown_lines:
            raise ProviderProtocolError(
                "the upstream's answer is not an event stream", provider=self.name
            )

    async def _done(
        self, response: aiohttp.ClientResponse, decoder: SSEDecoder, clock: _Clock
    ) -> bool:
        """After `[DONE]`: whether the body ended, so the connection may be reused."""
        self._reject_junk(decoder, clock)
        return await _drain(response)

    def _ended_early(self, decoder: SSEDecoder, clock: _Clock) -> ProviderError:
        self._reject_junk(decoder, clock)
        return ProviderUnavailable("the upstream stream ended early", provider=self.name)

    def _event_delta(
        self, data: str, generation_id: str | None
    ) -> tuple[ChatDelta | None, str | None]:
        """The delta of one data event, and the generation id known from then on."""
        document = self._json(data)
        content = plain_text(document)
        if content is None:
            # Besides text, a chunk may carry numbers that are kept as sent (usage and
            # cost, reasoning items, tool arguments as JSON, an error's payload): read
            # by json, which keeps integers of any size exactly.
            document = self._json(data, exact=True)
        if generation_id is None and self.dialect is Dialect.OPENROUTER:
            # OpenRouter's chunk id is the generation's id.
            generation_id = header_generation_id(_str_or_none(document.get("id")))
        if content is not None:
            return text_delta(document, content, generation_id), generation_id
        delta = stream_delta(document, provider=self.name, generation_id=generation_id)
        return delta, generation_id

    def _error_event(self, data: str) -> Mapping[str, object]:
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        return {"error": {"message": data}}

    async def _whole_answer(
        self, response: aiohttp.ClientResponse, clock: _Clock, generation_id: str | None
    ) -> ChatDelta:
        body, complete = await self._read_body(response, clock, DEFAULT_MAX_EVENT_BYTES)
        if not complete:
            raise ProviderProtocolError(
                "the upstream's JSON answer is too large", provider=self.name
            )
        return self._complete_answer(body, generation_id)

    def _complete_answer(self, body: bytes, generation_id: str | None) -> ChatDelta:
        answer = self._json(body.decode("utf-8", errors="replace"), exact=True)
        if generation_id is None and self.dialect is Dialect.OPENROUTER:
            generation_id = header_generation_id(_str_or_none(answer.get("id")))
        return whole_answer(answer, provider=self.name, generation_id=generation_id)

    def _json(self, text: str, *, exact: bool = False) -> dict[str, Any]:
        """The JSON object `text` holds; unless `exact`, integers past 64 bits may be
        read as floats (see `_loads`)."""
        try:
            value = json.loads(text) if exact else _loads(text)
        except ValueError as exc:
            raise ProviderProtocolError(
                "the upstream sent invalid JSON in its answer", provider=self.name
            ) from exc
        if not isinstance(value, dict):
            raise ProviderProtocolError(
                "the upstream sent a JSON value that is not an object", provider=self.name
            )
        return value


async def _drain(response: aiohttp.ClientResponse) -> bool:
    """Read the rest of a finished stream; True when the body really ended."""
    remaining = _DRAIN_MAX_BYTES
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while remaining > 0:
                chunk = await response.content.readany()
                if not chunk:
                    return True
                remaining -= len(chunk)
    except (TimeoutError, aiohttp.ClientError):
        # The answer is complete either way; the connection just is not reused.
        return False
    return False


def _let_go(response: aiohttp.ClientResponse, *, clean: bool) -> None:
    """Back to the pool when the body was read to its end; closed otherwise."""
    if clean:
        response.release()
    else:
        response.close()


def _loads(text: str) -> Any:
    """JSON text decoded by orjson, twice as fast as json on a stream's chunks, to the
    value json.loads gives but for integers past 64 bits, which orjson reads as floats.
    What orjson refuses and json accepts (NaN, Infinity, lone surrogate escapes) goes to
    json.loads, so both accept the same texts and raise the same errors."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_body(payload: Mapping[str, Any]) -> bytes:
    """A request body as bytes: orjson's compact UTF-8, or json.dumps for what orjson
    cannot write (an integer beyond 64 bits in a tool's schema)."""
    try:
        return orjson.dumps(payload)
    except TypeError:
        return json.dumps(payload).encode()


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
