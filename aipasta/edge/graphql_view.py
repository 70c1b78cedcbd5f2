"""Strawberry's ASGI view, wired to our per-request Context, sign-in and protections.

- HTTP errors Strawberry raises before any operation (a batch, a bad body, GraphiQL
  turned off) answer in the API's JSON error format instead of plain text.
- Queries and mutations over HTTP are cancelled after `operation_timeout`; streams are
  left to the chat timeouts. They are also cancelled as soon as their client
  disconnects (aipasta.edge.disconnect): a chat answer then ends as a stream's does.
- Websockets speak graphql-transport-ws only, through our hardened handler
  (aipasta.edge.ws_protocol); a browser page from an origin outside `allowed_origins` is
  refused before the handshake completes (HTTP 403).
- GraphQL over SSE (graphql-sse, distinct connections mode) answers a request sent with
  `Accept: text/event-stream` (aipasta.edge.sse).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from aipasta.edge.answer_cache import AnswerCache, CachingGraphQL
from aipasta.edge.disconnect import cancelled_on_disconnect
from aipasta.edge.json_depth import JSONTooDeep, check_json_depth
from aipasta.edge.request_ids import REQUEST_ID_HEADER
from aipasta.edge.request_ids import request_id as request_id_of
from aipasta.edge.sse import ServerSentEvents
from aipasta.edge.ws_protocol import GatewayTransportWS
from aipasta.graphiql import graphiql_page
from aipasta.settings import AuthMode, Settings
from resolvers.context import Context, Services
from resolvers.errors import CredentialError, Unauthenticated
from resolvers.identity.sign_in import connection_authorization, sign_in, sign_in_request
from schema.build import build_schema
from schema.errors import error_answer, timed_out
from schema.strawberry_seams import AsyncHTTPRequestAdapter, HTTPException
from schema.types.enums import ErrorCode

log = logging.getLogger("aipasta.graphql")

ACK = cast(UnsetType, UNSET)  # connection_ack without a payload


class GatewayGraphQL(ServerSentEvents, CachingGraphQL):
    graphql_transport_ws_handler_class = GatewayTransportWS

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout),
            max_subscriptions_per_connection=settings.ws_max_operations,
            allowed_origins=settings.allowed_origins,
        )
        self.operation_timeout = settings.operation_timeout
        self.max_json_depth = settings.max_json_depth
        self.answers = AnswerCache(
            max_bytes=settings.answer_cache_bytes, max_tokens=settings.max_tokens
        )
        # A kept answer's catalog read waits at most the cold-start wait; the early reply
        # has no operation timeout around it, so it is only given when that wait is
        # shorter (else the normal path bounds it).
        self.reply_early = settings.models_cold_start_wait < settings.operation_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        if self.reply_early:
            early, receive = await self.early_reply(scope, receive)
            if early is not None:
                await early(scope, receive, send)
                return
        try:
            response = await self.run(Request(scope, receive=receive))
        except HTTPException as exc:
            response = http_error(exc, request_id_of(scope))
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        return graphiql_page()  # Strawberry's page, with our own copies of its assets

    def decode_json(self, data: str | bytes) -> object:
        """Every JSON text a client sends (body, GET parameters, websocket frames): one
        nested too deeply is refused before the decoder's recursion meets it. Over a
        websocket the JSONDecodeError closes the socket with 4400."""
        check_json_depth(data, self.max_json_depth)
        return super().decode_json(data)

    def parse_json(self, data: str | bytes) -> object:
        try:
            return super().parse_json(data)
        except HTTPException as exc:
            if isinstance(exc.__cause__, JSONTooDeep):
                raise HTTPException(400, exc.__cause__.msg) from None
            raise

    async def execute_single(  # noqa: PLR0917 - Strawberry's signature
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        # A subscription over HTTP returns its stream at once, so only queries and
        # mutations can run into this.
        try:
            async with (
                cancelled_on_disconnect(request.receive) as gone,
                asyncio.timeout(self.operation_timeout) as deadline,
            ):
                context.deadline = deadline
                return await super().execute_single(
                    request, request_adapter, sub_response, context, root_value, request_data
                )
        except TimeoutError:
            if gone.expired():
                log.info("client gone: operation cancelled (request %s)", context.request_id)
                return ExecutionResult(data=None, errors=None)  # nobody reads it
            log.warning(
                "operation %r cancelled after %g s (request %s)",
                request_data.operation_name,
                self.operation_timeout,
                context.request_id,
            )
            return timed_out(self.operation_timeout, context.request_id)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services: Services = request.state.services
        request_id = request_id_of(request.scope)
        if isinstance(response, Response):
            response.headers[REQUEST_ID_HEADER] = request_id
        context = Context(
            services=services, request=request, response=response, request_id=request_id
        )
        await sign_in_request(context, request)
        return context

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """A refused credential, in the upgrade headers or `connection_init`, closes with 4403."""
        if context.services.settings.auth is AuthMode.OFF:
            return ACK
        try:
            authorization = connection_authorization(context.connection_params)
        except CredentialError:
            raise ConnectionRejectionError from None
        if authorization is not None:
            await sign_in(context, authorization)
        else:
            authorization = context.request.headers.get("authorization")
        context.authorization = authorization
        if isinstance(context.auth_error, Unauthenticated):
            raise ConnectionRejectionError
        return ACK


def http_error(exc: HTTPException, request_id: str) -> JSONResponse:
    """Strawberry's refusals (plain text by default) in the API's error format, with a
    request id."""
    if exc.status_code == 404:
        code = ErrorCode.NOT_FOUND
    elif exc.status_code < 500:
        code = ErrorCode.BAD_USER_INPUT
    else:
        code = ErrorCode.INTERNAL
    return JSONResponse(
        error_answer(exc.reason, {"code": code.value}, request_id),
        status_code=exc.status_code,
        headers={REQUEST_ID_HEADER: request_id},
    )
