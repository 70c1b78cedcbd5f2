"""The outermost layer: every HTTP response carries `X-Request-ID`, and open websockets
are counted.

An incoming `X-Request-ID` is kept only from a trusted proxy (AIPASTA_TRUSTED_PROXIES)
and only when it is a safe token of at most 128 characters; anyone else gets a new id,
so a client cannot plant text in the logs or pose as another request.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aipasta.edge.client_ip import TrustedProxies
from aipasta.edge.headers import first_headers
from aipasta.edge.request_ids import REQUEST_ID_HEADER, adopt_request_id, request_id
from resolvers.context import Services

_ID_NAME = REQUEST_ID_HEADER.lower().encode()


class Observe:
    def __init__(self, app: ASGIApp, trusted_proxies: TrustedProxies) -> None:
        self.app = app
        self.proxies = trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.proxies.peer(scope)[1]:
            adopt_request_id(scope, first_headers(scope, (_ID_NAME,)).get(_ID_NAME))
        made = request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if not any(name == _ID_NAME for name, _ in headers):
                    # The message's own list may be shared (a response's raw headers).
                    message["headers"] = [*headers, (_ID_NAME, made.encode("latin-1"))]
            await send(message)

        await self.app(scope, receive, send_with_id)

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
