"""Keeping a websocket's credential honest for as long as the connection lives.

A connection signs in once, at `connection_init`, but may stay open for hours. So:
- every `subscribe` checks the credential again (the API key cache may answer);
- one timer per connection wakes when the answer could change (the key's cache entry
  ends, the token's `exp` plus leeway passes) and checks again.
A refused credential (revoked key, expired token) ends the open operations as a client
disconnect would (upstream closed, partial answer saved, usage recorded) and closes the
socket with 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from documents.errors import DatabaseUnavailable
from resolvers.context import Context
from resolvers.errors import CredentialError
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import Identity

log = logging.getLogger("aipasta.ws")

CLOSE_FORBIDDEN = 4403
# However short the key cache, a connection looks its key up at most this often.
MIN_RECHECK_SECONDS = 0.25

Sleep = Callable[[float], Awaitable[object]]
Refuse = Callable[[CredentialError], Awaitable[None]]


class CredentialWatch:
    def __init__(
        self,
        authenticator: Authenticator,
        authorization: str,
        identity: Identity,
        *,
        refuse: Refuse,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._authenticator = authenticator
        self._authorization = authorization
        self._identity = identity
        self._refuse = refuse
        self._sleep = sleep
        self._timer: asyncio.Task[None] | None = None

    async def still_valid(self) -> bool:
        """Check the credential now; False (after refusing the connection) if it is not.

        Raises DatabaseUnavailable when an API key cannot be checked.
        """
        try:
            identity = await self._authenticator.authenticate(self._authorization)
        except CredentialError as exc:
            await self._refuse(exc)
            return False
        if identity is not None:
            self._identity = identity
        return True

    def start(self) -> None:
        if self._timer is None:
            self._timer = asyncio.create_task(self._watch(), name="ws-credential-watch")

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    async def _watch(self) -> None:
        while True:
            delay = self._authenticator.recheck_in(self._authorization, self._identity)
            if delay is None:
                return
            await self._sleep(max(delay, MIN_RECHECK_SECONDS))
            try:
                if not await self.still_valid():
                    return
            except DatabaseUnavailable:
                # Not a refusal: the key is checked again at the next tick.
                log.warning("cannot re-check a websocket's API key: database unavailable")


def watch_connection(context: Context, refuse: Refuse) -> CredentialWatch | None:
    """The watch for a signed-in connection; None when it has no credential to re-check."""
    if context.authorization is None or context.identity is None:
        return None
    return CredentialWatch(
        context.services.authenticator, context.authorization, context.identity, refuse=refuse
    )
