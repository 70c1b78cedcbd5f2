"""The outermost layer: every HTTP response carries `X-Request-ID`, and open websockets
are counted.

An incoming `X-Request-ID` is kept only from a trusted proxy (AIPASTA_TRUSTED_PROXIES)
and only when it is a safe token of at most 128 characters; anyone else gets a new id,
so a client cannot plant text in the logs or pose as another request.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aipasta.edge.client_ip import Network, is_trusted, parse_address
from aipasta.edge.request_ids import REQUEST_ID_HEADER, adopt_request_id, request_id
from resolvers.context import Services


class Observe:
    def __init__(self, app: ASGIApp, trusted_proxies: list[Network]) -> None:
        self.app = app
        self.trusted = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._from_trusted_proxy(scope):
            adopt_request_id(scope, Headers(scope=scope).get(REQUEST_ID_HEADER))
        made = request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers[REQUEST_ID_HEADER] = made
            await send(message)

        await self.app(scope, receive, send_with_id)

    def _from_trusted_proxy(self, scope: Scope) -> bool:
        client = scope.get("client")
        peer = parse_address(str(client[0])) if client else None
        return peer is not None and is_trusted(peer, self.trusted)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = scope.get("state", {}).get("services")
        if not isinstance(services, Services):
            await self.app(scope, receive, send)
            return
        gauge = services.metrics.websockets
        accepted = False

        async def counting_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                gauge.inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            if accepted:
                gauge.dec()
