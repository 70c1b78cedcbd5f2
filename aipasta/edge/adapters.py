"""What the REST adapters (the seed's /api, OpenAI's /v1) share: one request, one operation.

The adapters are thin: they turn a JSON body into the GraphQL fields' own inputs and call
the fields' resolver functions (resolvers/chat, resolvers/catalog, resolvers/history)
with a Context built exactly as the GraphQL view builds it. Around each call, in the
order the edge guards /graphql (aipasta.edge.middleware):

1. the body cap (`max_body_bytes`): 413 from `Content-Length`, or as soon as a body sent
   without one grows past it (the rest is read and dropped within bounds first, so a
   client still sending reads the answer);
2. the rate limits around sign-in (resolvers.limits.admission): the same budget per IP
   and per user as GraphQL over HTTP, websockets and SSE; 429 with `Retry-After`;
3. the JSON body: nested at most `max_json_depth`, no NUL or lone surrogate anywhere
   (schema.guards' rule), then the adapter's own checks of types, naming the field;
4. the call, cancelled when the client disconnects; a query or mutation is cancelled
   after `operation_timeout` (a whole chat answer extends it, as over GraphQL); a
   stream keeps its chat timeouts and its per-user stream slot.

Each adapter renders errors in its own shape (`ErrorStyle`), from the one ErrorCode,
with the HTTP status `http_status` gives it; messages are redacted (the server's
secrets, the request's bearer token) and an unexpected fault is masked as INTERNAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from aipasta.edge.client_ip import client_ip
from aipasta.edge.disconnect import cancelled_on_disconnect
from aipasta.edge.json_depth import check_json_depth
from aipasta.edge.middleware import content_length
from aipasta.edge.request_ids import request_id as request_id_of
from aipasta.edge.sse import EventStream
from resolvers.chat import stream as stream_fields
from resolvers.context import Context, Info, Services
from resolvers.errors import (
    BadUserInput,
    GatewayError,
    OperationTimedOut,
    log_level,
    to_gateway_error,
    whole_seconds,
)
from resolvers.identity.sign_in import STATE_KEY, SignIn, check_credentials, sign_in_request
from resolvers.limits.admission import admit
from resolvers.monitoring.operation_facts import begin_operation
from schema.guards import unsafe_variable
from schema.operation_log import operation_done
from schema.types.chat import ChatFailed, ChatStreamEvent
from schema.types.enums import ErrorCode
from schema.types.inputs import ChatInput

log = logging.getLogger("aipasta.adapters")

T = TypeVar("T")

# How much more than the cap is read (and dropped) before a 413, as the edge does.
DRAIN_FACTOR = 4
DRAIN_SECONDS = 5.0
DRAIN_IDLE_SECONDS = 0.5
EVENT_STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}

_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_USER_INPUT: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.INSUFFICIENT_CREDITS: 402,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.MODEL_NOT_FOUND: 404,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.PROVIDER_RATE_LIMITED: 429,
    ErrorCode.CONTENT_FILTERED: 400,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.PROVIDER_UNAVAILABLE: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.SERVICE_UNAVAILABLE: 503,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}


def http_status(code: ErrorCode) -> int:
    return _STATUS.get(code, 500)


@dataclass(frozen=True)
class Failure:
    """One error as an adapter answers it: already public (redacted, masked)."""

    code: ErrorCode
    message: str
    status: int
    field: str | None = None
    retry_after: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Cache-Control": "no-store"}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.code is ErrorCode.UNAUTHENTICATED:
            headers["WWW-Authenticate"] = "Bearer"
        return headers


class ErrorStyle(Protocol):
    def body(self, failure: Failure) -> dict[str, Any]: ...


class ClientGone(Exception):
    """The client disconnected: its operation was cancelled and nobody reads an answer."""


def _field_of(error: GatewayError) -> str | None:
    details = error.details or {}
    field = details.get("field")
    if not isinstance(field, str):
        return None
    # The GraphQL fields name their argument (`input.messages[0]`); here the body is it.
    return field.removeprefix("input.")


def snake_case(field: str) -> str:
    """`options.maxTokens` as the REST bodies spell it: `options.max_tokens`."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), field)


def failure_of(error: GatewayError, services: Services, *, status: int | None = None) -> Failure:
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is None and error.retry_after is not None:
        retry_after = whole_seconds(error.retry_after)
    code = error.code
    if retry_after is None and code in (ErrorCode.RATE_LIMITED, ErrorCode.PROVIDER_RATE_LIMITED):
        retry_after = 1
    return Failure(
        code=code,
        message=services.redactor.redact(error.message),
        status=status or http_status(code),
        field=_field_of(error),
        retry_after=retry_after,
    )


def event_error(event: ChatFailed) -> GatewayError:
    """A stream's ChatFailed event as the error it reports (its code and message)."""
    error = GatewayError(event.message)
    error.code = event.code
    error.retryable = event.retryable
    return error


def masked(exc: BaseException, services: Services, request_id: str) -> Failure:
    """The public form of any exception; an unexpected one is logged and masked."""
    known = to_gateway_error(exc)
    if known is not None:
        failure = failure_of(known, services)
        log.log(log_level(failure.code.value), "request %s: %s", request_id, failure.code.value)
        return failure
    log.error("internal error (request %s)", request_id, exc_info=exc)
    return Failure(ErrorCode.INTERNAL, f"Internal server error (request id {request_id})", 500)


def error_response(style: ErrorStyle, failure: Failure) -> JSONResponse:
    return JSONResponse(style.body(failure), status_code=failure.status, headers=failure.headers)


@dataclass(frozen=True)
class _FieldCall:
    """All the GraphQL fields' resolver functions read of their `info`: its context."""

    context: Context


DONE = "data: [DONE]\n\n"


def sse_data(payload: dict[str, Any]) -> str:
    """One Server-Sent Event carrying `payload` as compact JSON."""
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


@dataclass
class Call:
    """One adapter request, admitted and signed in."""

    request: Request
    context: Context
    body: bytes

    @property
    def services(self) -> Services:
        return self.context.services

    @property
    def info(self) -> Info:
        """For the GraphQL fields' resolver functions, which take `info` and read only
        `info.context` (tests/adapters runs each one used here)."""
        return cast("Info", _FieldCall(self.context))

    def json(self, model: type[BaseModelT]) -> BaseModelT:
        """The body as `model`, or BAD_USER_INPUT naming what is wrong and where."""
        return parse_body(self.body, model, self.services.settings.max_json_depth)

    async def bounded(self, work: Awaitable[T]) -> T:
        """Run a query or mutation as the GraphQL view runs one over HTTP: cancelled when
        the client disconnects (ClientGone) or after `operation_timeout` (TIMEOUT); the
        field may extend its own deadline (a whole chat answer does)."""
        seconds = self.services.settings.operation_timeout
        try:
            async with (
                cancelled_on_disconnect(self.request.receive) as gone,
                asyncio.timeout(seconds) as deadline,
            ):
                self.context.deadline = deadline
                return await work
        except TimeoutError:
            if gone.expired():
                log.info("client gone: operation cancelled (request %s)", self.context.request_id)
                raise ClientGone from None
            if deadline.expired():
                raise OperationTimedOut(seconds) from None
            raise

    async def first_event(self, events: AsyncIterator[T]) -> T:
        """The stream's first event, before any byte of the answer is sent: a refusal
        (bad input, unknown model, stream cap, upstream down) is then an error status."""
        try:
            async with cancelled_on_disconnect(self.request.receive) as gone:
                return await anext(events)
        except TimeoutError:
            if gone.expired():
                raise ClientGone from None
            raise

    async def chat_events(
        self, input: ChatInput
    ) -> tuple[ChatStreamEvent, AsyncGenerator[ChatStreamEvent, None]]:
        """A `chatStream` started as the GraphQL subscription starts it, with its first
        event: a run that fails before its first event is raised, as a status."""
        events = stream_fields.chat_stream(self.info, input)
        try:
            first = await self.first_event(events)
        except BaseException:
            await events.aclose()
            raise
        if isinstance(first, ChatFailed):
            await events.aclose()
            raise event_error(first)
        return first, events

    async def event_chunks(
        self,
        style: ErrorStyle,
        first: ChatStreamEvent,
        events: AsyncGenerator[ChatStreamEvent, None],
        render: Callable[[ChatStreamEvent], Iterator[str]],
    ) -> AsyncIterator[str]:
        """An adapter's stream: each event as `render` writes it; a failed run, or a
        failure in the gateway itself (masked), as one event in `style`; then `[DONE]`."""
        async with contextlib.aclosing(events):
            event: ChatStreamEvent | None = first
            try:
                while event is not None:
                    if isinstance(event, ChatFailed):
                        yield sse_data(style.body(failure_of(event_error(event), self.services)))
                    else:
                        for chunk in render(event):
                            yield chunk
                    event = await anext(events, None)
            except Exception as exc:  # noqa: BLE001 - told to the client in the stream's shape
                yield sse_data(style.body(masked(exc, self.services, self.context.request_id)))
        yield DONE

    def event_stream(self, chunks: AsyncIterator[str]) -> Response:
        """Server-Sent Events with the GraphQL SSE transport's guarantees: a client that
        leaves, or accepts nothing for `stream_send_timeout`, closes `chunks` at once
        (which closes the upstream request and saves the partial answer)."""
        settings = self.services.settings
        return EventStream(
            chunks,
            source=None,
            status_code=200,
            headers={**EVENT_STREAM_HEADERS, "Content-Type": "text/event-stream"},
            send_timeout=settings.stream_send_timeout,
            request_id=self.context.request_id,
            redactor=self.services.redactor,
        )


BaseModelT = TypeVar("BaseModelT", bound=BaseModel)


def parse_body(raw: bytes, model: type[BaseModelT], max_depth: int) -> BaseModelT:
    if not raw.strip():
        raise BadUserInput("send a JSON object as the request body")
    try:
        check_json_depth(raw, max_depth)
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadUserInput(f"the request body is not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise BadUserInput("the request body is not valid UTF-8") from None
    if not isinstance(decoded, dict):
        raise BadUserInput("the request body must be a JSON object")
    where = unsafe_variable(decoded)
    if where is not None:
        raise BadUserInput(f"`{where}` contains a NUL byte or an invalid character", field=where)
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        raise _bad_body(exc) from None


def _bad_body(exc: ValidationError) -> BadUserInput:
    # The deepest error: of a union's branches, the one the value came closest to.
    errors = exc.errors(include_url=False, include_input=False)
    first = max(errors, key=lambda error: len(error["loc"]))
    field = _path(first["loc"])
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    return BadUserInput(f"`{field}`: {message}" if field else message, field=field or None)


# Pydantic's names for a union's plain branches (`str | list[Part]`).
_BRANCHES = frozenset({"str", "int", "float", "bool", "none"})


def _path(loc: tuple[int | str, ...]) -> str:
    """Pydantic's location as the body spells it (`messages[0].content`), without the
    names pydantic gives a union's branches and a tagged union's tags."""
    path = ""
    tag_next = False  # the next name is a tagged union's tag, not a field
    tag_after_index = False  # ... once the list's index is read
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            tag_next, tag_after_index = tag_after_index, False
        elif part.startswith("list[tagged-union["):
            tag_after_index = True
        elif part.startswith("tagged-union["):
            tag_next = True
        elif tag_next:
            tag_next = False
        elif part in _BRANCHES or part.startswith(("function-", "list[", "nullable[")):
            continue
        elif not path:
            path = part
        else:
            path += f".{part}"
    return path


Handler = Callable[[Call], Awaitable[Response]]


@dataclass
class _Outcome:
    context: Context | None = None
    code: str | None = None


class AdapterEndpoint:
    """An ASGI endpoint running `handler` behind the body cap, the rate limits and
    sign-in, with every error in `style`. An admitted request is one operation, named
    `name` in the operation log line and metrics (as a GraphQL operation's, written
    when its answer or stream ends)."""

    def __init__(self, handler: Handler, style: ErrorStyle, *, name: str) -> None:
        self.handler = handler
        self.style = style
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        outcome = _Outcome()
        started = time.monotonic()
        facts = begin_operation(request_id_of(scope))
        response = await self._answer(request, outcome)
        try:
            await response(scope, receive, send)
        finally:
            if outcome.context is not None:
                kind = (
                    "subscription"
                    if isinstance(response, EventStream)
                    else ("query" if request.method == "GET" else "mutation")
                )
                operation_done(
                    outcome.context,
                    facts,
                    kind=kind,
                    name=self.name,
                    code=outcome.code or facts.error_code,
                    seconds=time.monotonic() - started,
                )

    async def _answer(self, request: Request, outcome: _Outcome) -> Response:
        services: Services = request.state.services
        settings = services.settings
        request_id = request_id_of(request.scope)
        cap = settings.max_body_bytes
        try:
            body = await _read_capped(request, cap)
        except ClientDisconnect:
            return Response(status_code=499)  # nobody reads it
        if body is None:
            return error_response(
                self.style,
                Failure(
                    ErrorCode.BAD_USER_INPUT,
                    f"Request body too large: the limit is {cap} bytes",
                    413,
                ),
            )

        async def signing_in() -> SignIn:
            result = await check_credentials(services, request.headers.get("authorization"))
            request.scope.setdefault("state", {})[STATE_KEY] = result
            return result

        admission = await admit(
            services,
            client_ip=client_ip(request.scope, settings.trusted_proxy_networks),
            sign_in=signing_in,
        )
        if not admission.decision.allowed:
            refusal = admission.decision.error()
            log.info("request %s: %s", request_id, refusal.code.value)
            return error_response(
                self.style, failure_of(refusal, services, status=admission.decision.status)
            )
        context = Context(services=services, request=request, response=None, request_id=request_id)
        await sign_in_request(context, request)
        outcome.context = context
        try:
            return await self.handler(Call(request, context, body))
        except ClientGone:
            return Response(status_code=499)  # nobody reads it
        except Exception as exc:  # noqa: BLE001 - every fault answers in the adapter's shape
            failure = masked(exc, services, request_id)
            outcome.code = failure.code.value
            return error_response(self.style, failure)


def adapter_endpoint(handler: Handler, style: ErrorStyle, *, name: str) -> AdapterEndpoint:
    return AdapterEndpoint(handler, style, name=name)


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The body, or None when it is over `cap` (the rest read and dropped, within bounds)."""
    declared = content_length(request.scope)
    if declared is not None and declared > DRAIN_FACTOR * cap:
        return None  # too large even to drain: the server closes the connection after
    chunks: list[bytes] = []
    size = 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > cap:
            await _drain(stream, size, DRAIN_FACTOR * cap)
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(stream: AsyncIterator[bytes], size: int, limit: int) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while size <= limit:
                chunk = await asyncio.wait_for(anext(stream, b""), DRAIN_IDLE_SECONDS)
                if not chunk:
                    return
                size += len(chunk)
