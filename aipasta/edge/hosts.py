"""The `Host` header check, against DNS rebinding.

A web page on `evil.example` can point its own name at 127.0.0.1 and then script the
local server as if it were same-origin: CORS cannot stop it, the browser thinks it is
talking to evil.example. What gives it away is the `Host` header, which names the page's
domain. With `AIPASTA_AUTH=off` such a page would otherwise act as the local admin.

Starlette's TrustedHostMiddleware decides (its parsing of IPv6 literals and ports and its
`*.domain` patterns); its plain-text refusal is replaced by the API's JSON error format,
HTTP 400, also for a websocket handshake. Its verdict depends on the `Host` header alone,
so it is asked once per distinct value (up to `HOST_VERDICTS` of them) and remembered.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aipasta.edge.headers import first_headers
from aipasta.edge.request_ids import REQUEST_ID_HEADER, request_id
from aipasta.settings import ANY_HOST
from schema.errors import error_answer
from schema.types.enums import ErrorCode

log = logging.getLogger("aipasta.edge.middleware")

# Enough of a refused Host header for the operator to recognise it.
LOGGED_HOST_CHARS = 100
# Distinct `Host` values whose verdict is remembered; past that, each is asked anew.
HOST_VERDICTS = 256
_HOST = (b"host",)
WS_DENIAL = "websocket.http.response"


class HostGuard:
    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self.allow_any = ANY_HOST in self.allowed_hosts
        # The first `Host` header's value (None: no such header) -> allowed.
        self._verdicts: dict[str | None, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        host = first_headers(scope, _HOST).get(b"host")
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = await self._decide(scope, receive, send)
            if len(self._verdicts) < HOST_VERDICTS:
                self._verdicts[host] = verdict
            return
        if verdict:
            await self.app(scope, receive, send)
        else:
            await self._refuse(scope, receive, send)

    async def _decide(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Starlette's verdict, the request passed on or refused by it; whether it passed."""
        accepted = False

        async def accept(scope: Scope, receive: Receive, _: Send) -> None:
            nonlocal accepted
            accepted = True
            await self.app(scope, receive, send)

        async def discard(message: Message) -> None:
            """Where Starlette's own refusal goes: ours is sent instead."""

        check = TrustedHostMiddleware(accept, allowed_hosts=self.allowed_hosts, www_redirect=False)
        await check(scope, receive, discard)
        if not accepted:
            await self._refuse(scope, receive, send)
        return accepted

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = request_id(scope)
        host = Headers(scope=scope).get("host", "")
        log.info(
            "request %s: %s (Host %r is not allowed)",
            request,
            ErrorCode.BAD_USER_INPUT.value,
            host[:LOGGED_HOST_CHARS],
        )
        if scope["type"] == "websocket" and WS_DENIAL not in scope.get("extensions", {}):
            # No way to answer the handshake with a body: the server refuses it (403).
            await send({"type": "websocket.close", "code": 1008})
            return
        message = "Invalid Host header: this server does not answer to that name"
        response = JSONResponse(
            error_answer(message, {"code": ErrorCode.BAD_USER_INPUT.value}, request),
            status_code=400,
            headers={REQUEST_ID_HEADER: request},
        )
        await response(scope, receive, send)
