"""Rate limits at the HTTP edge (per IP, per user), the limiter's store failing, and the
cap on a user's open streams."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from pathlib import Path
from typing import Any

import pytest
from limits.aio.storage import MemoryStorage

from aipasta.edge.client_ip import PEER_ENTRIES, TrustedProxies, client_ip
from documents.database import Database
from resolvers.errors import RateLimited
from resolvers.identity.key_store import ApiKeyStore
from resolvers.limits.rate_limiter import RateLimiter
from tests.conftest import make_settings
from tests.security.conftest import get, post, rate_limited_body
from tests.streaming.conftest import (
    CHAT_STREAM,
    MISTRAL,
    MISTRAL_UPSTREAM,
    GraphQLWebSocket,
    Outcome,
    StreamApp,
    user_says,
)
from tests.support.errors import body_without_request_id, without_request_id
from tests.support.fake_upstream import FakeUpstream, Finish, Text, Wait, steps
from tests.support.server import RunningApp, StartApp

TRUSTED = {"AIPASTA_TRUSTED_PROXIES": "127.0.0.1"}


def address_message(retry_after: int) -> str:
    return f"Rate limit exceeded for this address: retry in {retry_after} s"


def user_message(retry_after: int) -> str:
    return f"Rate limit exceeded for this user: retry in {retry_after} s"


def bearer(token: str, forwarded_for: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return headers


def from_ip(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def assert_ok(app: RunningApp, headers: dict[str, str] | None = None) -> None:
    answer = await post(app, headers=headers)
    assert (answer.status, answer.body) == (200, {"data": {"__typename": "Query"}})


async def assert_refused(
    app: RunningApp, limit: int, *, by: str = "ip", headers: dict[str, str] | None = None
) -> None:
    answer = await post(app, headers=headers)
    assert answer.status == 429
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    message = address_message if by == "ip" else user_message
    assert body_without_request_id(
        answer.body, answer.headers["X-Request-ID"]
    ) == rate_limited_body(message(retry_after), retry_after, limit)


# --- per IP ---------------------------------------------------------------------------


async def test_the_31st_operation_in_a_minute_from_one_address_gets_429(
    start_app: StartApp,
) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="30/minute")  # the default
    for _ in range(29):
        await assert_ok(app)
    # A GET query is an operation too.
    answer = await get(app, "/graphql?query=%7B__typename%7D")
    assert (answer.status, answer.body) == (200, {"data": {"__typename": "Query"}})

    await assert_refused(app, 30)
    # Refused operations do not push the window further: still refused, not worse.
    await assert_refused(app, 30)


async def test_health_and_the_graphiql_page_are_not_counted(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="2/minute", AIPASTA_GRAPHIQL="true")
    page = {"Accept": "text/html"}
    for _ in range(3):
        assert (await get(app, "/health")).status == 200
        assert (await get(app, "/api/health")).status == 200
        graphiql = await get(app, "/graphql", headers=page)
        assert graphiql.status == 200
        assert "<html" in graphiql.body.lower()

    await assert_ok(app)
    await assert_ok(app)
    await assert_refused(app, 2)
    assert (await get(app, "/health")).status == 200
    assert (await get(app, "/graphql", headers=page)).status == 200


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(start_app: StartApp) -> None:
    app = await start_app(AIPASTA_RATE_LIMIT="2/minute")  # no trusted proxies
    await assert_ok(app, from_ip("198.51.100.1"))
    await assert_ok(app, from_ip("198.51.100.2"))
    # A client cannot escape its limit by claiming to be someone else.
    await assert_refused(app, 2, headers=from_ip("198.51.100.3"))


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(start_app: StartApp) -> None:
    app = await start_app(
        AIPASTA_RATE_LIMIT="2/minute", AIPASTA_TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8"
    )
    await assert_ok(app, from_ip("198.51.100.7"))
    # Through a second trusted proxy: still the same client.
    await assert_ok(app, from_ip("198.51.100.7, 10.1.2.3"))
    await assert_refused(app, 2, headers=from_ip("198.51.100.7"))
    # What the client itself wrote (left of what the proxy appended) changes nothing.
    await assert_refused(app, 2, headers=from_ip("203.0.113.66, 198.51.100.7"))
    # Another client behind the same proxy has its own limit.
    await assert_ok(app, from_ip("198.51.100.8"))
    # The proxy's own requests are counted as the proxy's.
    await assert_ok(app)


PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("198.51.100.9", "203.0.113.1", "198.51.100.9"),  # untrusted peer: header ignored
        ("127.0.0.1", "203.0.113.1, 10.0.0.2", "203.0.113.1"),  # through two proxies
        ("127.0.0.1", "6.6.6.6, 203.0.113.1", "203.0.113.1"),  # client-written left part
        ("127.0.0.1", "garbage, 10.0.0.2", "10.0.0.2"),  # nearest trusted hop
        ("127.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # proxies all the way
        ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),  # a port is dropped
        ("127.0.0.1", None, "127.0.0.1"),
        ("::ffff:198.51.100.9", None, "198.51.100.9"),  # IPv4 on a dual-stack socket
    ],
)
def test_client_ip_believes_forwarded_for_only_as_far_as_trusted_proxies(
    peer: str, forwarded_for: str | None, expected: str
) -> None:
    headers = [] if forwarded_for is None else [(b"x-forwarded-for", forwarded_for.encode())]
    assert client_ip({"client": (peer, 5000), "headers": headers}, PROXIES) == expected


def test_a_remembered_peer_is_still_judged_by_each_requests_own_header() -> None:
    proxies = TrustedProxies(PROXIES)
    for _ in range(2):  # the second time from what is remembered about each peer
        for peer, forwarded, expected in [
            ("127.0.0.1", "203.0.113.1", "203.0.113.1"),
            ("127.0.0.1", None, "127.0.0.1"),
            ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
            ("198.51.100.9", "203.0.113.1", "198.51.100.9"),
            ("::ffff:198.51.100.9", None, "198.51.100.9"),
            ("not-an-address", "203.0.113.1", "not-an-address"),
        ]:
            headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
            scope = {"client": (peer, 5000), "headers": headers}
            assert proxies.client_ip(scope) == expected
    assert proxies.client_ip({"headers": []}) == "unknown"


def test_peers_past_the_remembered_number_are_judged_all_the_same() -> None:
    proxies = TrustedProxies(PROXIES)
    for i in range(PEER_ENTRIES + 10):
        peer = str(ipaddress.ip_address("192.0.2.0") + i)
        assert proxies.peer({"client": (peer, 1), "headers": []}) == (peer, False)
    assert proxies.peer({"client": ("10.9.9.9", 1), "headers": []}) == ("10.9.9.9", True)


# --- per user -------------------------------------------------------------------------


async def test_a_user_is_limited_across_addresses_and_not_by_the_anonymous_address_limit(
    start_app: StartApp, database: Database
) -> None:
    # Issue 8 changed this rule: a signed-in operation no longer counts against its
    # address's (anonymous) limit, only against its user's and the address's flood guard.
    keys = ApiKeyStore(database)
    alice = (await keys.create(user_id="alice")).key
    bob = (await keys.create(user_id="bob")).key
    app = await start_app(
        AIPASTA_AUTH="required",
        AIPASTA_RATE_LIMIT="2/minute",
        AIPASTA_USER_RATE_LIMIT="3/minute",
        **TRUSTED,
    )
    await assert_ok(app, bearer(alice, "198.51.100.1"))
    await assert_ok(app, bearer(alice, "198.51.100.1"))
    await assert_ok(app, bearer(alice, "198.51.100.2"))
    await assert_refused(app, 3, by="user", headers=bearer(alice, "198.51.100.3"))
    # Another user is not affected, and the address keeps its anonymous budget.
    await assert_ok(app, bearer(bob, "198.51.100.3"))
    await assert_ok(app, from_ip("198.51.100.1"))
    await assert_ok(app, from_ip("198.51.100.1"))
    await assert_refused(app, 2, headers=from_ip("198.51.100.1"))


# --- the store failing ----------------------------------------------------------------


class BrokenStorage(MemoryStorage):
    """A store whose every moving-window call fails (its URI: async+broken://)."""

    STORAGE_SCHEME = ["async+broken"]
    calls = 0

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        BrokenStorage.calls += 1
        raise ConnectionError("store down")

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        raise ConnectionError("store down")


class HangingStorage(MemoryStorage):
    STORAGE_SCHEME = ["async+hanging"]

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def failures_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "aipasta.rate_limit"]


async def test_a_failing_store_lets_requests_through(
    start_app: StartApp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aipasta.rate_limit")
    BrokenStorage.calls = 0
    app = await start_app(AIPASTA_RATE_LIMIT="1/minute", AIPASTA_RATE_LIMIT_STORAGE="broken://")
    for _ in range(3):
        await assert_ok(app)
    # Asked twice per operation (issue 8): the flood guard, then the address's limit.
    assert BrokenStorage.calls == 6
    assert failures_logged(caplog) == [
        "rate limit store failed 1 time(s); requests are let through unlimited: "
        "ConnectionError('store down')"
    ]


async def test_store_failures_are_counted_and_logged_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aipasta.rate_limit")
    now = [1000.0]
    limiter = RateLimiter(
        make_settings(tmp_path, AIPASTA_RATE_LIMIT="1/minute"),
        storage=BrokenStorage(),
        monotonic=lambda: now[0],
    )
    for _ in range(3):
        decision = await limiter.check(client_ip="198.51.100.1", user_id="alice")
        assert decision.allowed
    assert limiter.store_failures == 3
    assert len(failures_logged(caplog)) == 1

    now[0] += 61
    await limiter.check(client_ip="198.51.100.1", user_id=None)
    assert limiter.store_failures == 4
    assert len(failures_logged(caplog)) == 2
    # The second message accounts for the ones not logged in between.
    assert failures_logged(caplog)[1].startswith("rate limit store failed 3 time(s);")
    await limiter.close()


async def test_a_store_that_does_not_answer_counts_as_failed(tmp_path: Path) -> None:
    limiter = RateLimiter(make_settings(tmp_path), storage=HangingStorage(), store_timeout=0.05)
    decision = await limiter.check(client_ip="198.51.100.1", user_id=None)
    assert decision.allowed
    assert limiter.store_failures == 1


# --- the limiter itself ---------------------------------------------------------------


async def test_decisions_report_the_tightest_limit_and_ipv6_counts_per_64(tmp_path: Path) -> None:
    limiter = RateLimiter(
        make_settings(
            tmp_path,
            AIPASTA_RATE_LIMIT="3/minute;10/hour",
            AIPASTA_USER_RATE_LIMIT="5/minute",
        )
    )
    first = await limiter.check(client_ip="2001:db8::1", user_id=None)
    assert (first.allowed, first.scope, first.limit, first.remaining) == (True, "ip", 3, 2)
    await limiter.check(client_ip="2001:db8::2", user_id=None)
    await limiter.check(client_ip="2001:db8::3", user_id=None)
    refused = await limiter.check(client_ip="2001:db8::ffff", user_id=None)
    assert (refused.allowed, refused.scope, refused.limit, refused.remaining) == (
        False,
        "ip",
        3,
        0,
    )
    assert 59 < refused.retry_after <= 60
    assert refused.extensions() == {
        "code": "RATE_LIMITED",
        "retryAfter": 60,
        "limit": 3,
        "remaining": 0,
    }
    other = await limiter.check(client_ip="2001:db8:0:1::1", user_id=None)
    assert (other.allowed, other.scope, other.remaining) == (True, "ip", 2)
    # Issue 8: a signed-in operation counts against its user only, whatever its address.
    user = await limiter.check(client_ip="2001:db8::1", user_id="alice")
    assert (user.allowed, user.scope, user.limit, user.remaining) == (True, "user", 5, 4)
    await limiter.close()


# --- open streams ---------------------------------------------------------------------


async def test_a_user_holds_at_most_max_streams_slots(tmp_path: Path) -> None:
    limiter = RateLimiter(make_settings(tmp_path, AIPASTA_MAX_STREAMS_PER_USER=1))
    async with limiter.stream_slot("alice"):
        with pytest.raises(RateLimited) as refused:
            async with limiter.stream_slot("alice"):
                raise AssertionError("a second slot was granted")
        assert refused.value.extensions == {
            "code": "RATE_LIMITED",
            "retryAfter": 1,
            "limit": 1,
            "remaining": 0,
        }
        async with limiter.stream_slot("bob"):
            assert limiter.open_streams("bob") == 1
    assert limiter.open_streams("alice") == 0

    # A stream that fails still gives its slot back.
    with pytest.raises(RuntimeError):
        async with limiter.stream_slot("alice"):
            raise RuntimeError("upstream went away")
    async with limiter.stream_slot("alice"):
        assert limiter.open_streams("alice") == 1


async def test_a_second_concurrent_chat_stream_is_refused_before_any_upstream_call(
    sse: FakeUpstream, stream_app: StreamApp, ws_client: Any
) -> None:
    gate = asyncio.Event()
    sse.script(MISTRAL_UPSTREAM, steps(Text("Hel"), Wait(gate), Text("lo"), Finish(3, 2)))
    app = await stream_app(AIPASTA_MAX_STREAMS_PER_USER=1)
    ws: GraphQLWebSocket = await ws_client(app)
    variables = {"input": {"model": MISTRAL, "messages": user_says("Say hello")}}

    first = await ws.subscribe(CHAT_STREAM, variables)
    first_outcome = Outcome()
    delta = await ws.event(first, first_outcome)
    assert delta is not None and delta["content"] == "Hel"

    second = await ws.finish(await ws.subscribe(CHAT_STREAM, variables))
    assert second.events == []
    assert [without_request_id(e["extensions"]) for e in second.errors] == [
        {"code": "RATE_LIMITED", "retryAfter": 1, "limit": 1, "remaining": 0}
    ]
    assert len(sse.chats) == 1

    gate.set()
    await ws.finish(first, first_outcome)
    assert first_outcome.errors == []
    assert first_outcome.events[-1]["__typename"] == "ChatCompleted"
    # The slot is free again once the first stream has ended.
    sse.script(MISTRAL_UPSTREAM, steps(Text("Hi"), Finish(3, 1)))
    third = await ws.finish(await ws.subscribe(CHAT_STREAM, variables))
    assert third.errors == []
    assert third.events[-1]["__typename"] == "ChatCompleted"
