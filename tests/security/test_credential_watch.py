"""The credential watch of a websocket ends with its connection, whatever its re-check was
doing, and a database outage is logged once, not once per socket per tick."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from aipasta.edge.ws_credentials import CredentialWatch, RecheckFailures
from documents.errors import DatabaseUnavailable
from resolvers.errors import CredentialError
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import Identity
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.support.clocks import Sleeps

KEY = "Bearer aip_test_key_not_checked_here"
ALICE = Identity(user_id="alice")
WARNINGS = "cannot re-check websocket API keys"
RECOVERED = "can be re-checked again"


class LosesOneCancellation(Authenticator):
    """An API key lookup that never answers, and that turns the first cancellation it
    gets into DatabaseUnavailable: what pymongo's server selection does on Python 3.11
    when the cancel and the end of its wait land in the same loop turn (asyncio.wait_for
    then returns the inner result, the selection times out)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(make_settings(tmp_path, AIPASTA_AUTH="required"), ApiKeyStore(None))
        self.calls = 0
        self.checking = asyncio.Event()
        self._lost = False

    async def authenticate(self, authorization: str | None) -> Identity | None:
        self.calls += 1
        self.checking.set()
        try:
            await asyncio.Event().wait()  # a database that never answers
        except asyncio.CancelledError:
            if self._lost:
                raise
            self._lost = True
        raise DatabaseUnavailable()

    def recheck_in(self, authorization: str, identity: Identity) -> float | None:
        return 0.0  # an API key with no cache entry: checked at every tick


class Scripted(Authenticator):
    """Re-checks answered from a script: True (the key holds) or False (the database is
    down); once the script is done, the next check waits until the test stops the watch."""

    def __init__(self, tmp_path: Path, script: list[bool]) -> None:
        super().__init__(make_settings(tmp_path, AIPASTA_AUTH="required"), ApiKeyStore(None))
        self.script = script
        self.done = asyncio.Event()

    async def authenticate(self, authorization: str | None) -> Identity | None:
        if not self.script:
            self.done.set()
            await asyncio.Event().wait()
        if not self.script.pop(0):
            raise DatabaseUnavailable()
        return ALICE

    def recheck_in(self, authorization: str, identity: Identity) -> float | None:
        return 0.0


async def never_refused(error: CredentialError) -> None:
    raise AssertionError(f"refused: {error}")


def watch(authenticator: Authenticator, failures: RecheckFailures) -> CredentialWatch:
    return CredentialWatch(
        authenticator, KEY, ALICE, refuse=never_refused, sleep=Sleeps(), failures=failures
    )


async def test_a_watch_stopped_while_its_check_loses_the_cancellation_still_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The CI hang: with the database down, the connection's shutdown waited for ever on
    a watch whose cancelled re-check came back as DatabaseUnavailable (not a refusal, so
    "check again next tick") and which went on checking."""
    authenticator = LosesOneCancellation(tmp_path)
    watching = watch(authenticator, RecheckFailures())
    watching.start()
    await asyncio.wait_for(authenticator.checking.wait(), 5)

    async with asyncio.timeout(5):  # a bound, not a wait: stop() returns at once
        await watching.stop()

    assert authenticator.calls == 1  # no further re-check after the stop
    # A stopped watch is not an outage: nothing logged.
    assert WARNINGS not in caplog.text
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "ws-credential-watch"]


def ws_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aipasta.ws" and r.levelno >= logging.WARNING
    ]


async def run_until_done(authenticator: Scripted, watching: CredentialWatch) -> None:
    watching.start()
    await asyncio.wait_for(authenticator.done.wait(), 5)
    await watching.stop()


async def test_an_outage_is_logged_once_when_rechecks_fail_and_once_when_they_recover(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aipasta.ws")
    failures = RecheckFailures()
    # Two sockets, the same outage: 3 + 2 failed ticks, then a check that works.
    first = Scripted(tmp_path, [True, False, False, False])
    second = Scripted(tmp_path, [False, False, True, True])
    await run_until_done(first, watch(first, failures=failures))
    await run_until_done(second, watch(second, failures=failures))

    (failing, recovered) = ws_warnings(caplog)
    assert WARNINGS in failing and "database unavailable" in failing
    assert RECOVERED in recovered and "after 5 failed re-checks" in recovered

    # The next outage is logged again, as its own.
    caplog.clear()
    third = Scripted(tmp_path, [False, True])
    await run_until_done(third, watch(third, failures=failures))
    assert [RECOVERED in m for m in ws_warnings(caplog)] == [False, True]
    assert "after 1 failed re-check" in ws_warnings(caplog)[1]


async def test_checks_that_never_failed_log_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    authenticator = Scripted(tmp_path, [True, True])
    await run_until_done(authenticator, watch(authenticator, failures=RecheckFailures()))
    assert ws_warnings(caplog) == []


class Broken(Authenticator):
    """A re-check that fails with a bug (not the database being down)."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(make_settings(tmp_path, AIPASTA_AUTH="required"), ApiKeyStore(None))

    async def authenticate(self, authorization: str | None) -> Identity | None:
        raise KeyError("a bug in the key store")

    def recheck_in(self, authorization: str, identity: Identity) -> float | None:
        return 0.0


async def test_a_recheck_that_fails_with_a_bug_closes_the_socket_instead_of_trusting_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A watch that died silently would leave the socket open with no re-checks: a key
    revoked afterwards would keep working on it."""
    refused: list[str] = []
    closed = asyncio.Event()

    async def refuse(error: CredentialError) -> None:
        refused.append(str(error))
        closed.set()

    watching = CredentialWatch(
        Broken(tmp_path), KEY, ALICE, refuse=refuse, sleep=Sleeps(), failures=RecheckFailures()
    )
    watching.start()
    await asyncio.wait_for(closed.wait(), 5)
    await watching.stop()

    assert refused == ["the connection's credential could not be checked again; reconnect"]
    assert "a bug in the key store" in caplog.text  # logged with its traceback, once
    assert caplog.text.count("credential re-check failed") == 1
