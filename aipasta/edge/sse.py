"""GraphQL over Server-Sent Events: the graphql-sse protocol, distinct connections mode.

A POST (or GET) to /graphql with `Accept: text/event-stream` runs one operation and
answers with an event stream: an `event: next` per result, then `event: complete`.
Subscriptions stream; queries and mutations send their one result. Strawberry's SSE
transport speaks the protocol (and sends a `: ping` comment every 15 s); around it the
gateway gives an SSE operation what it gives every other:
- the edge's body cap, sign-in and rate limits (aipasta.edge.middleware): one request is
  one operation, counted once, in the same budget as plain HTTP and websockets; a refusal
  is the usual JSON error with its status (429 with `Retry-After`) before any event;
- the schema's guards, where a subscription is let through only when it streams (a plain
  JSON POST is still refused: schema.guards); chatStream's per-user stream cap and
  bounded read-ahead (`stream_buffer_bytes`) are the resolver's, as on a websocket;
- errors in the API's format, masked and with `extensions.requestId` (schema.errors); an
  unexpected fault after the stream began ends it with an INTERNAL error in a `next`
  event and `complete`, rather than a cut connection;
- a query or mutation is cancelled after `operation_timeout`, as over plain HTTP
  (aipasta.edge.graphql_view): its one `next` event is then the TIMEOUT error (a whole
  chat answer extends its own deadline; subscriptions keep the chat timeouts);
- a client that closes the response cancels the operation at once
  (aipasta.edge.disconnect): a chat stream then closes its upstream request and saves
  the partial answer, as when a websocket client leaves;
- a client that accepts nothing for `stream_send_timeout` while an event waits for it
  is given up on the same way, and its connection closed from our side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, ClassVar, cast

from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult, SubscriptionExecutionResult

from aipasta.edge.disconnect import cancelled_on_disconnect
from aipasta.edge.request_ids import request_id as request_id_of
from providers.redaction import Redactor
from resolvers.context import Context, Services
from schema.errors import log_error, public_error, timed_out
from schema.query_cache import cached_document
from schema.strawberry_seams import AsyncHTTPRequestAdapter, SSETransport

log = logging.getLogger("aipasta.sse")


class ServerSentEvents(GraphQL[Context, None]):
    """The view's part in GraphQL over SSE: it marks an SSE operation's Context (for the
    schema's subscription guard) and answers with an `EventStream`, which is handed the
    operation's results as well: closing the events alone does not always close them
    (Strawberry's heartbeat merger leaves them to the garbage collector when its reader
    was waiting on a full queue, i.e. whenever the client is slow)."""

    # Each operation's results, from execute_operation to create_streaming_response of
    # the same request (keyed by its own sub-response, so one map serves every view).
    _sources: ClassVar[weakref.WeakKeyDictionary[Response, SubscriptionExecutionResult]] = (
        weakref.WeakKeyDictionary()
    )

    async def execute_operation(  # noqa: PLR0917 - Strawberry's signature
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Context,
        root_value: None,
        sub_response: Response,
    ) -> ExecutionResult | list[ExecutionResult] | SubscriptionExecutionResult:
        over_sse = (
            isinstance(request_data, GraphQLRequestData)
            and request_data.protocol == SSETransport.protocol
        )
        if over_sse:
            context.over_sse = True
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        if isinstance(result, SubscriptionExecutionResult):
            assert isinstance(request_data, GraphQLRequestData)
            if over_sse and not self._is_subscription(request_data, context):
                seconds = context.services.settings.operation_timeout
                # An async generator is one: Strawberry's Protocol is only stricter in name.
                result = cast("SubscriptionExecutionResult", _bounded(result, seconds, context))
            self._sources[sub_response] = result
        return result

    @staticmethod
    def _is_subscription(request_data: GraphQLRequestData, context: Context) -> bool:
        """Whether the request runs a subscription (a document that does not parse, or
        names no operation, is not one: Strawberry answers it with its error)."""
        if not request_data.query:
            return False
        try:
            document = cached_document(request_data.query, context.services.settings.max_tokens)
        except GraphQLError:
            return False
        operation = get_operation_ast(document, request_data.operation_name)
        return operation is not None and operation.operation is OperationType.SUBSCRIPTION

    async def create_streaming_response(
        self,
        request: Request | WebSocket,
        stream: Callable[[], AsyncIterator[str]],
        sub_response: Response,
        headers: Mapping[str, str],
    ) -> Response:
        services: Services = request.state.services
        return EventStream(
            stream(),
            source=self._sources.pop(sub_response, None),
            status_code=sub_response.status_code or 200,
            headers={**sub_response.headers, **headers},
            send_timeout=services.settings.stream_send_timeout,
            request_id=request_id_of(request.scope),
            redactor=services.redactor,
        )


class EventStream(StreamingResponse):
    """An event stream that ends its events' source at once when the client leaves or
    stops reading (closing the source is what cancels the operation)."""

    def __init__(
        self,
        content: AsyncIterator[str],
        *,
        source: SubscriptionExecutionResult | None,
        status_code: int,
        headers: Mapping[str, str],
        send_timeout: float,
        request_id: str,
        redactor: Redactor,
    ) -> None:
        super().__init__(content, status_code=status_code, headers=headers)
        self.events = content
        self.source = source
        self.send_timeout = send_timeout
        self.request_id = request_id
        self.redactor = redactor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with cancelled_on_disconnect(receive) as gone:
                delivered = await self._send_all(send)
            if not delivered:
                log.warning(
                    "SSE client accepted nothing for %g s: disconnecting it (request %s)",
                    self.send_timeout,
                    self.request_id,
                )
                # Returning with the response unfinished makes the server close the
                # connection: nothing more can reach a client that reads nothing.
        except TimeoutError:
            if not gone.expired():
                raise
            log.info("client gone: SSE operation cancelled (request %s)", self.request_id)
        finally:
            await _aclose(self.events)
            if self.source is not None:
                await _aclose(self.source)

    async def _send_all(self, send: Send) -> bool:
        """Every event, then the end of the body; False as soon as the client stalls."""
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        if not await self._send(send, start):
            return False
        failed = False
        while not failed:
            try:
                chunk = await anext(self.events)
            except StopAsyncIteration:
                break
            except Exception as exc:  # noqa: BLE001 - told to the client, masked, and logged
                chunk, failed = self._failure(exc), True
            if not await self._send(send, self._body(chunk)):
                return False
        return await self._send(send, self._body("", more=False))

    def _body(self, chunk: str, *, more: bool = True) -> Message:
        return {"type": "http.response.body", "body": chunk.encode(), "more_body": more}

    async def _send(self, send: Send, message: Message) -> bool:
        """Send `message`; False when the client took longer than `send_timeout`."""
        try:
            async with asyncio.timeout(self.send_timeout) as limit:
                await send(message)
        except TimeoutError:
            if limit.expired():
                return False
            raise
        return True

    def _failure(self, exc: Exception) -> str:
        """The events ending a stream that failed outside GraphQL's error handling."""
        error = GraphQLError(str(exc), original_error=exc)
        log_error(error, self.request_id)
        public = public_error(error, self.request_id, redactor=self.redactor)
        payload: GraphQLHTTPResponse = {"data": None, "errors": [public.formatted]}
        transport = SSETransport()
        return transport.encode_next(payload, _compact_json) + transport.encode_complete()


async def _bounded(
    source: SubscriptionExecutionResult, seconds: float, context: Context
) -> AsyncGenerator[Any, None]:
    """A query's or mutation's one result, cut after `seconds` as over plain HTTP
    (aipasta.edge.graphql_view): the same TIMEOUT error, in a `next` event. The field may
    extend its own deadline (a whole chat answer does)."""
    try:
        try:
            async with asyncio.timeout(seconds) as deadline:
                context.deadline = deadline
                first = await anext(source)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if not deadline.expired():
                raise
            log.warning(
                "SSE operation cancelled after %g s (request %s)", seconds, context.request_id
            )
            yield timed_out(seconds, context.request_id)
            return
        finally:
            context.deadline = None
        yield first
        async for more in source:
            yield more
    finally:
        await _aclose(source)


def _compact_json(data: object) -> str:
    return json.dumps(data, separators=(",", ":"))


async def _aclose(events: object) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
