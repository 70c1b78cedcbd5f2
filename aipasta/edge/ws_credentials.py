"""Keeping a websocket's credential honest for as long as the connection lives.

A connection signs in once, at `connection_init`, but may stay open for hours. So:
- every `subscribe` checks the credential again (the API key cache may answer);
- one timer per connection wakes when the answer could change (the key's cache entry
  ends, the token's `exp` plus leeway passes) and checks again.
A refused credential (revoked key, expired token) ends the open operations as a client
disconnect would (upstream closed, partial answer saved, usage recorded) and closes the
socket with 4403.

The watch ends when its connection does, even if a cancellation is lost on the way:
Python 3.11's `asyncio.wait_for` (inside pymongo's server selection) returns the inner
result when a cancel and that result land in the same loop turn, so a watch cancelled
during a re-check could see DatabaseUnavailable instead of CancelledError. Treated as
"try again next tick", that kept the watch looping for ever with the database down,
and the connection's shutdown, which waits for the watch, never ended: the ASGI server
then waited on that socket until its graceful-shutdown timeout.

While MongoDB is down no key can be re-checked; that is logged once per process when
re-checks start failing and once when one succeeds again, with the number of failed
re-checks in between (per process: the outage is the database's, shared by every socket,
and one line per socket per tick would bury everything else).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from documents.errors import DatabaseUnavailable
from resolvers.context import Context
from resolvers.errors import CredentialError
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import AuthMethod, Identity

log = logging.getLogger("aipasta.ws")

CLOSE_FORBIDDEN = 4403
# However short the key cache, a connection looks its key up at most this often.
MIN_RECHECK_SECONDS = 0.25
RECHECK_BROKEN = "the connection's credential could not be checked again; reconnect"

Sleep = Callable[[float], Awaitable[object]]
Refuse = Callable[[CredentialError], Awaitable[None]]


class RecheckFailures:
    """Re-checks that could not reach the database, logged once per outage: a warning when
    they start failing, one when a re-check succeeds again (with how many failed)."""

    def __init__(self) -> None:
        self._failed = 0

    def failed(self) -> None:
        if self._failed == 0:
            log.warning(
                "cannot re-check websocket API keys: database unavailable; sockets stay "
                "open and are checked again each tick (logged again once checks recover)"
            )
        self._failed += 1

    def succeeded(self) -> None:
        failed, self._failed = self._failed, 0
        if failed:
            log.warning(
                "websocket API keys can be re-checked again, after %d failed re-check%s",
                failed,
                "" if failed == 1 else "s",
            )


# One per process: a database outage is logged once, however many sockets are open.
RECHECK_FAILURES = RecheckFailures()


class CredentialWatch:
    def __init__(
        self,
        authenticator: Authenticator,
        authorization: str,
        identity: Identity,
        *,
        refuse: Refuse,
        sleep: Sleep = asyncio.sleep,
        failures: RecheckFailures = RECHECK_FAILURES,
    ) -> None:
        self._authenticator = authenticator
        self._authorization = authorization
        self._identity = identity
        self._refuse = refuse
        self._sleep = sleep
        self._failures = failures
        self._timer: asyncio.Task[None] | None = None
        self._stopped = False

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
        if self._timer is None and not self._stopped:
            self._timer = asyncio.create_task(self._watch(), name="ws-credential-watch")
            self._timer.add_done_callback(_report_crash)

    async def stop(self) -> None:
        """End the watch; it does not run again. Returns once it has ended."""
        self._stopped = True
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            # Not `await timer`: a cancellation of the caller must reach the caller.
            await asyncio.wait({timer})

    async def _watch(self) -> None:
        while not self._stopped:
            delay = self._authenticator.recheck_in(self._authorization, self._identity)
            if delay is None:
                return
            await self._sleep(max(delay, MIN_RECHECK_SECONDS))
            if self._stopped:
                return
            try:
                valid = await self.still_valid()
            except DatabaseUnavailable:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # Stopped during the check, the cancel lost inside the driver.
                    raise asyncio.CancelledError from None
                # Not a refusal: the key is checked again at the next tick.
                self._failures.failed()
                continue
            except Exception:
                # A bug, not an outage: a connection nobody can re-check any more would
                # keep a revoked key working, so it is closed (the client signs in again).
                log.exception("websocket credential re-check failed; closing the socket")
                await self._refuse(CredentialError(RECHECK_BROKEN))
                return
            if self._identity.via is AuthMethod.API_KEY:
                self._failures.succeeded()  # the key store answered (a token needs no I/O)
            if not valid:
                return


def _report_crash(timer: asyncio.Task[None]) -> None:
    if not timer.cancelled() and (error := timer.exception()) is not None:
        log.error("websocket credential watch failed", exc_info=error)


def watch_connection(context: Context, refuse: Refuse) -> CredentialWatch | None:
    """The watch for a signed-in connection; None when it has no credential to re-check."""
    if context.authorization is None or context.identity is None:
        return None
    return CredentialWatch(
        context.services.authenticator, context.authorization, context.identity, refuse=refuse
    )
