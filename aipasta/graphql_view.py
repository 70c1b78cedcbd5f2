"""Strawberry's ASGI view, wired to our per-request Context and sign-in."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from aipasta.settings import AuthMode, Settings
from resolvers.context import Context, Services
from resolvers.errors import Unauthenticated
from resolvers.identity.errors import CredentialError
from resolvers.sign_in import connection_authorization, sign_in, sign_in_request
from schema.build import build_schema

REQUEST_ID_HEADER = "X-Request-ID"
ACK = cast(UnsetType, UNSET)  # connection_ack without a payload


class GatewayGraphQL(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(),
            graphql_ide="graphiql" if settings.graphiql_enabled else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=5),
        )

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services: Services = request.state.services
        request_id = uuid.uuid4().hex
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
        if isinstance(context.auth_error, Unauthenticated):
            raise ConnectionRejectionError
        return ACK
