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
  limits (resolvers.limits.admission, in the same order as over HTTP), is answered with an
  `error` message for that id in the API's error format; the socket stays open.
- The connection's credential is checked again on each `subscribe` and whenever its
  answer could change (aipasta.edge.ws_credentials); once refused, the socket closes with 4403.
- A client that accepts nothing for `stream_send_timeout` while a message waits for it
  (it stopped reading but keeps the connection open) is given up on: its operations end
  as on a disconnect (upstream closed, partial answer saved, usage recorded) and the
  connection is closed from our side. No close frame can reach such a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from graphql import GraphQLFormattedError

from aipasta.edge.client_ip import client_ip
from aipasta.edge.ws_credentials import CLOSE_FORBIDDEN, CredentialWatch, watch_connection
from documents.errors import DatabaseUnavailable
from resolvers.context import Context
from resolvers.errors import CredentialError
from resolvers.identity.sign_in import SignIn
from resolvers.limits.admission import admit
from schema.errors import error_entry
from schema.strawberry_seams import (
    BaseGraphQLTransportWSHandler,
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)
from schema.types.enums import ErrorCode

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
    credential_watch: CredentialWatch | None = None
    _client_address: str | None = None

    def _client_ip(self) -> str:
        """The client's address, worked out once: a connection's peer and headers (and
        the trusted proxies) stay what they were for all its operations."""
        if self._client_address is None:
            self._client_address = client_ip(
                self.context.request.scope, self.context.services.settings.trusted_proxy_networks
            )
        return self._client_address

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        if self.connection_acknowledged and self.credential_watch is None:
            self.credential_watch = watch_connection(self.context, self._credential_refused)
            if self.credential_watch is not None:
                self.credential_watch.start()

    async def shutdown(self) -> None:
        if self.credential_watch is not None:
            await self.credential_watch.stop()
        await super().shutdown()

    async def _credential_refused(self, error: CredentialError) -> None:
        """End every operation as a disconnect would, then close the socket."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(code=CLOSE_FORBIDDEN, reason=str(error))

    async def _credential_holds(self, operation_id: str, request: str) -> bool:
        """Check the connection's credential again before a new operation. False when
        the operation must not run: the socket is closing (refused), or the key cannot
        be checked now (answered with an `error` for this id, under request id `request`)."""
        if self.credential_watch is None:
            return True
        try:
            return await self.credential_watch.still_valid()
        except DatabaseUnavailable:
            error = error_entry(
                "cannot check the API key now",
                {"code": ErrorCode.DATABASE_UNAVAILABLE.value},
                request,
            )
            await self.send_message({"id": operation_id, "type": "error", "payload": [error]})
            return False

    _client_stalled: asyncio.Event

    async def handle(self) -> None:
        """Strawberry's loop, ended early once the client stops accepting messages (its
        shutdown then cancels every operation)."""
        self._client_stalled = asyncio.Event()
        serving = asyncio.create_task(super().handle(), name="ws-handler")
        stalled = asyncio.create_task(self._client_stalled.wait(), name="ws-stalled")
        try:
            await asyncio.wait({serving, stalled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stalled.cancel()
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving

    async def send_message(self, message: Message) -> None:
        seconds = self.context.services.settings.stream_send_timeout
        try:
            async with asyncio.timeout(seconds):
                await super().send_message(message)
        except TimeoutError:
            log.warning(
                "websocket client accepted nothing for %g s: disconnecting it (request %s)",
                seconds,
                self.context.request_id,
            )
            self._client_stalled.set()
            # The sender (an operation, or the handler's loop) ends as if cancelled: an
            # operation's stream is closed the way a client's disconnect closes it.
            raise asyncio.CancelledError from None

    async def handle_message(self, message: Message) -> None:
        problem = frame_problem(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Strawberry's own answers come first: before the ack 4401, a reused id 4409.
        if self.connection_acknowledged and message["id"] not in self.operations:
            # A refused operation never runs (nor gets OperationLog's id): its own id here.
            request = uuid.uuid4().hex
            refusal = self._too_many_open()
            if refusal is None:
                admitted, refusal = await self._admit(message["id"], request)
                if not admitted and refusal is None:
                    return  # closing (credential refused), or already answered
            if refusal is not None:
                extensions = refusal.get("extensions", {})
                log.info(
                    "request %s: %s on subscribe (connection %s)",
                    request,
                    extensions.get("code"),
                    self.context.request_id,
                )
                error = error_entry(refusal["message"], extensions, request)
                await self.send_message({"id": message["id"], "type": "error", "payload": [error]})
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

    async def _admit(
        self, operation_id: str, request: str
    ) -> tuple[bool, GraphQLFormattedError | None]:
        """The rate limits around sign-in, as over HTTP (resolvers.limits.admission), with the
        connection's credential checked again at the sign-in step, after the flood guard.
        (True, None): the operation may run; (False, refusal): answer it; (False, None):
        the credential check already answered or is closing the socket."""
        services = self.context.services
        holds = True

        async def signed_in() -> SignIn:
            nonlocal holds
            holds = await self._credential_holds(operation_id, request)
            return SignIn(self.context.identity, self.context.auth_error)

        admission = await admit(services, client_ip=self._client_ip(), sign_in=signed_in)
        if not holds:
            return False, None
        decision = admission.decision
        if decision.allowed:
            return True, None
        return False, {"message": decision.error().message, "extensions": decision.extensions()}
