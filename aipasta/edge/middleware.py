"""The HTTP edge in front of /graphql: CORS, a body size cap, sign-in and rate limits.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which would buffer streamed
responses and does not pass websockets through. Websockets go straight to the app:
their protocol handler applies the limits per `subscribe` message.

For each HTTP request to /graphql, in order:
1. the body cap: 413 from `Content-Length` before reading a byte, or as soon as a body
   sent without one (chunked) grows past `max_body_bytes`; the rest of the body is read
   and dropped first (within bounds), so a client still sending it reads the answer;
2. the rate limits around sign-in (resolvers.limits.admission): the IP's flood guard, then
   sign-in, once (the `SignIn` is left in `scope["state"]` for the GraphQL view), then
   the user's or the anonymous IP's limit; 429 with `Retry-After` when refused (503 when
   the limiter's store is down and `AIPASTA_RATE_LIMIT_FAIL=closed`).
Health and GraphiQL's page are not operations and skip both. A GraphQL-over-SSE request
(aipasta.edge.sse) is one operation like any other: guarded here before its stream starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aipasta.edge.client_ip import TrustedProxies
from aipasta.edge.headers import first_headers
from aipasta.edge.hosts import HostGuard
from aipasta.edge.observe import Observe
from aipasta.edge.request_ids import REQUEST_ID_HEADER, request_id
from aipasta.settings import Settings
from resolvers.context import Services
from resolvers.identity.sign_in import STATE_KEY, SignIn, check_credentials
from resolvers.limits.admission import Admission, admit
from resolvers.limits.rate_limiter import RateDecision
from schema.errors import error_answer
from schema.types.enums import ErrorCode

log = logging.getLogger("aipasta.edge.middleware")

GRAPHQL_PATH = "/graphql"
CORS_HEADERS = ["Authorization", "Content-Type"]
# Readable by browser code: when to retry, and which request to quote in a bug report.
CORS_EXPOSED = ["Retry-After", "X-Request-ID"]


def edge_middleware(settings: Settings) -> list[Middleware]:
    """The app's middleware, outermost first: the Host check (aipasta.edge.hosts) before
    anything; CORS also answers preflights and marks the edge's own 413/429 answers, so
    a browser can read them."""
    proxies = TrustedProxies(settings.trusted_proxy_networks)
    return [
        Middleware(Observe, trusted_proxies=proxies),
        Middleware(HostGuard, allowed_hosts=settings.trusted_hosts),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
        ),
        Middleware(EdgeGuard, settings=settings, proxies=proxies),
    ]


# Over the body cap, how much more of the body is read (and dropped) so that the client
# can read the 413: a client that sends its whole body before reading (no `Expect:
# 100-continue`, e.g. Python's urllib) would otherwise see the connection reset.
DRAIN_FACTOR = 4  # up to this many times the cap in all
DRAIN_SECONDS = 5.0
DRAIN_IDLE_SECONDS = 0.5  # a client that sends nothing more for this long is answered


class EdgeGuard:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        *,
        proxies: TrustedProxies,
        drain_factor: int = DRAIN_FACTOR,
        drain_seconds: float = DRAIN_SECONDS,
        drain_idle_seconds: float = DRAIN_IDLE_SECONDS,
    ) -> None:
        self.app = app
        self.max_body_bytes = settings.max_body_bytes
        self.drain_bytes = drain_factor * settings.max_body_bytes
        self.drain_seconds = drain_seconds
        self.drain_idle_seconds = drain_idle_seconds
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GRAPHQL_PATH:
            await self.app(scope, receive, send)
            return
        headers = EdgeHeaders.of(scope)
        if is_graphiql_page(scope, headers.accept or ""):
            await self.app(scope, receive, send)
            return
        services = _services(scope)
        declared = _length(headers.content_length)
        if declared is not None and declared > self.max_body_bytes:
            if declared <= self.drain_bytes:
                await self._drain(headers, receive)
            await self._too_large(send, request_id(scope))
            return
        body = await read_body(receive, self.max_body_bytes)
        if body is None:
            await self._drain(headers, receive)
            await self._too_large(send, request_id(scope))
            return
        admission = await self._admit(services, scope, headers)
        if not admission.decision.allowed:
            await rate_limited(send, admission.decision, request_id(scope))
            return
        await self.app(scope, replay(body, receive), send)

    async def _admit(self, services: Services, scope: Scope, headers: EdgeHeaders) -> Admission:
        """The rate limits around sign-in (resolvers.limits.admission); the `SignIn` is left in
        `scope["state"]` for the GraphQL view."""

        async def sign_in() -> SignIn:
            result = await check_credentials(services, headers.authorization)
            scope.setdefault("state", {})[STATE_KEY] = result
            return result

        address = self.proxies.client_ip(scope)
        return await admit(services, client_ip=address, sign_in=sign_in)

    async def _drain(self, headers: EdgeHeaders, receive: Receive) -> None:
        """Read and drop the rest of the body, within the drain bounds, before the 413:
        the HTTP server closes a connection whose request was not read to its end, and
        the client, still sending, would see a reset instead of the answer. A client that
        sent `Expect: 100-continue` sends nothing more; one that pauses for
        `drain_idle_seconds` is answered then."""
        if (headers.expect or "").lower() == "100-continue":
            return
        drained = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.drain_seconds):
                while drained <= self.drain_bytes:
                    message = await asyncio.wait_for(receive(), self.drain_idle_seconds)
                    if message["type"] != "http.request" or not message.get("more_body"):
                        return
                    drained += len(message.get("body", b""))

    async def _too_large(self, send: Send, request: str) -> None:
        limit = self.max_body_bytes
        await send_error(
            send,
            413,
            f"Request body too large: the limit is {limit} bytes",
            {"code": ErrorCode.BAD_USER_INPUT.value, "limit": limit},
            request,
        )


def _services(scope: Scope) -> Services:
    services = scope.get("state", {}).get("services")
    if not isinstance(services, Services):
        # Without them nothing can be limited; serving unguarded would hide the fault.
        raise TypeError("the edge guard needs the lifespan's services in scope['state']")
    return services


@dataclass(slots=True)
class EdgeHeaders:
    """The request headers the edge reads, from one pass over `scope["headers"]`."""

    content_length: str | None = None
    authorization: str | None = None
    accept: str | None = None
    expect: str | None = None

    @classmethod
    def of(cls, scope: Scope) -> EdgeHeaders:
        found = first_headers(scope, _EDGE_HEADERS)
        return cls(
            content_length=found.get(b"content-length"),
            authorization=found.get(b"authorization"),
            accept=found.get(b"accept"),
            expect=found.get(b"expect"),
        )


_EDGE_HEADERS = frozenset({b"content-length", b"authorization", b"accept", b"expect"})


def is_graphiql_page(scope: Scope, accept: str) -> bool:
    """The request Strawberry answers with GraphiQL's HTML (its own test, mirrored);
    `accept` is the request's `Accept` header ("" without one)."""
    if scope["method"] != "GET":
        return False
    if "query" in parse_qs(scope.get("query_string", b"").decode("latin-1"), True):
        return False
    return "text/html" in accept or "*/*" in accept


def content_length(scope: Scope) -> int | None:
    return _length(Headers(scope=scope).get("content-length"))


def _length(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None  # the server's HTTP parser refuses such framing itself


async def read_body(receive: Receive, limit: int) -> deque[Message] | None:
    """The request's body messages, or None once they add up to more than `limit` bytes
    (nothing further is read). A client that went away leaves its disconnect message
    last, for the app to see."""
    messages: deque[Message] = deque()
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def replay(messages: deque[Message], receive: Receive) -> Receive:
    """A `receive` that hands out the messages already read, then the real ones."""

    async def receive_again() -> Message:
        if messages:
            return messages.popleft()
        return await receive()

    return receive_again


async def rate_limited(send: Send, decision: RateDecision, request: str) -> None:
    error = decision.error()
    log.info(
        "request %s: %s (%s limit %d)", request, error.code.value, decision.scope, decision.limit
    )
    await send_error(
        send,
        decision.status,
        error.message,
        error.extensions,
        request,
        headers=[(b"retry-after", str(error.retry_after_seconds).encode())],
    )


async def send_error(
    send: Send,
    status: int,
    message: str,
    extensions: dict[str, Any],
    request: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A GraphQL-shaped error answer, like every other error the API gives (rendered by
    schema.errors), with the request's id in `extensions` and `X-Request-ID`."""
    body = json.dumps(error_answer(message, extensions, request), separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (REQUEST_ID_HEADER.lower().encode(), request.encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
