"""graphql-transport-ws, hardened: Strawberry's handler with stricter frames and limits.

On top of Strawberry's handler:
- Every frame is checked before Strawberry reads it; a malformed one closes the socket
  with 4400. Strawberry indexes frames as dicts, so valid JSON that is not an object
  (`[1]`, `"x"`, `null`, `3`), a `subscribe` whose payload is not an object, or an
  unhashable `id` raised a TypeError out of the handler: the connection dropped without
  a close code (1006) and the ASGI server logged a crash. It also let through a
  non-string `query` (answered with a Python error text), non-object `variables`
  (silently ignored) and non-string or empty ids.
- `subscribe` beyond `ws_max_operations` open operations, or refused by the rate
  limits (resolvers.admission, in the same order as over HTTP), is answered with an
  `error` message for that id in the API's error format; the socket stays open.
"""

from __future__ import annotations

import logging

from graphql import GraphQLFormattedError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)

from aipasta.client_ip import client_ip
from resolvers.admission import admit
from resolvers.context import Context
from resolvers.errors import ErrorCode
from resolvers.sign_in import SignIn

log = logging.getLogger("aipasta.ws")

# Frames whose `payload`, when present, must be an object.
_OPTIONAL_PAYLOAD = frozenset({"connection_init", "ping", "pong"})
_OPTIONAL_OBJECTS = ("variables", "extensions")


def frame_problem(frame: object) -> str | None:
    """Why a client frame is malformed (the close reason), or None when it is well-formed
    as far as its type is known; unknown types are left to Strawberry (also 4400)."""
    if not isinstance(frame, dict):
        return "Message must be a JSON object"
    kind = frame.get("type")
    if not isinstance(kind, str):
        return "Message type must be a string"
    if kind in _OPTIONAL_PAYLOAD:
        if "payload" in frame and not isinstance(frame["payload"], dict):
            return f"{kind} payload must be an object"
    elif kind in {"subscribe", "complete"}:
        if not isinstance(frame.get("id"), str) or not frame["id"]:
            return "Message id must be a non-empty string"
        if kind == "subscribe":
            return _subscribe_payload_problem(frame.get("payload"))
    return None


def _subscribe_payload_problem(payload: object) -> str | None:
    if not isinstance(payload, dict):
        return "subscribe payload must be an object"
    if not isinstance(payload.get("query"), str):
        return "subscribe query must be a string"
    if not isinstance(payload.get("operationName"), str | None):
        return "subscribe operationName must be a string or null"
    for name in _OPTIONAL_OBJECTS:
        if not isinstance(payload.get(name), dict | None):
            return f"subscribe {name} must be an object or null"
    return None


class GatewayTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_message(self, message: Message) -> None:
        problem = frame_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Strawberry's own answers come first: before the ack 4401, a reused id 4409.
        if self.connection_acknowledged and message["id"] not in self.operations:
            refusal = self._too_many_open() or await self._rate_limited()
            if refusal is not None:
                code = refusal.get("extensions", {}).get("code")
                log.info("request %s: %s on subscribe", self.context.request_id, code)
                await self.send_message(
                    {"id": message["id"], "type": "error", "payload": [refusal]}
                )
                return
        await super().handle_subscribe(message)

    def _too_many_open(self) -> GraphQLFormattedError | None:
        limit = self.max_subscriptions_per_connection
        if limit is None or len(self.operations) < limit:
            return None
        return {
            "message": (
                f"Too many operations open on this connection: at most {limit}; "
                "complete one before starting another"
            ),
            "extensions": {"code": ErrorCode.RATE_LIMITED.value, "limit": limit, "remaining": 0},
        }

    async def _rate_limited(self) -> GraphQLFormattedError | None:
        services = self.context.services
        admission = await admit(
            services,
            client_ip=client_ip(
                self.context.request.scope, services.settings.trusted_proxy_networks
            ),
            sign_in=self._signed_in,
        )
        decision = admission.decision
        if decision.allowed:
            return None
        return {"message": decision.error().message, "extensions": decision.extensions()}

    async def _signed_in(self) -> SignIn:
        """Who the connection signed in as (at `connection_init`)."""
        return SignIn(self.context.identity, self.context.auth_error)
