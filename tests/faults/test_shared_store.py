"""Several gateways on one Redis: one rate budget, one stream cap, and what clients get
while that Redis is down (`AIPASTA_RATE_LIMIT_FAIL`) and once it is back.

Each gateway here is a whole app with its own limiter and Redis connections, as a
separate process would have; `test_scaleout.py` runs two real `aipasta serve` processes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from resolvers.errors import StoreConfigError
from resolvers.limits.store import open_storage
from resolvers.limits.stream_slots import LEASE_SECONDS, SharedStreamSlots, redis_client
from tests.faults.conftest import MISTRAL, MISTRAL_UPSTREAM, FaultApp, FaultAppFactory, user_says
from tests.security.conftest import Answer, post
from tests.streaming.conftest import CHAT_STREAM, GraphQLWebSocket, Outcome, wait_until
from tests.support.errors import without_request_id
from tests.support.fake_upstream import FakeUpstream, Finish, Text, Wait, steps
from tests.support.redis_server import RedisServer

STREAM = {"input": {"model": MISTRAL, "messages": user_says("Hi")}}


def shared(redis_url: str, **env: object) -> dict[str, object]:
    return {"AIPASTA_RATE_LIMIT_STORAGE": redis_url, **env}


def code(answer: Answer) -> str:
    (error,) = answer.body["errors"]
    return str(error["extensions"]["code"])


async def metric(app: FaultApp, name: str) -> float:
    status, text = await app.get("/metrics")
    assert status == 200
    (line,) = [line for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(line.split()[1])


# --- one budget ----------------------------------------------------------------------


async def test_two_gateways_count_one_budget(fault_app: FaultAppFactory, redis_url: str) -> None:
    settings = shared(redis_url, AIPASTA_RATE_LIMIT="3/minute")
    first, second = await fault_app(**settings), await fault_app(**settings)

    assert [(await post(app)).status for app in (first, second, first)] == [200, 200, 200]
    for app in (second, first):
        refused = await post(app)
        assert refused.status == 429
        assert code(refused) == "RATE_LIMITED"
        assert refused.body["errors"][0]["extensions"]["limit"] == 3
        assert 1 <= int(refused.headers["Retry-After"]) <= 60

    _, health = await first.get("/health")
    assert health["services"]["rateLimitStore"] == "connected"
    assert await metric(first, "aipasta_rate_limit_store_shared") == 1
    assert await metric(first, "aipasta_rate_limit_store_up") == 1


async def test_the_stream_cap_holds_across_gateways(
    fault_app: FaultAppFactory, raw: FakeUpstream, redis_url: str
) -> None:
    gate = asyncio.Event()
    raw.default(MISTRAL_UPSTREAM, steps(Text("Hi"), Wait(gate), Finish()))
    settings = shared(redis_url, AIPASTA_MAX_STREAMS_PER_USER=1)
    first, second = await fault_app(**settings), await fault_app(**settings)

    holder = await GraphQLWebSocket.open(first)
    held = await holder.subscribe(CHAT_STREAM, STREAM)
    delta = await holder.event(held, Outcome())
    assert delta is not None and delta["content"] == "Hi"

    other = await GraphQLWebSocket.open(second)
    refused = await other.run(CHAT_STREAM, STREAM)
    assert [e["extensions"]["code"] for e in refused.errors] == ["RATE_LIMITED"], refused
    assert refused.errors[0]["message"].startswith("Too many open streams: at most 1")

    # The client going away ends its stream on the first gateway and frees the slot.
    await holder.close()
    gate.set()

    async def second_streams() -> Outcome | None:
        outcome = await other.run(CHAT_STREAM, STREAM)
        return outcome if outcome.completed and not outcome.errors else None

    done = await wait_until(second_streams, within=5)
    assert done.terminals[-1]["__typename"] == "ChatCompleted"
    # A stream that ended normally freed its slot too.
    again = await GraphQLWebSocket.open(first)
    try:
        outcome = await again.run(CHAT_STREAM, STREAM)
        assert outcome.completed and outcome.errors == [], outcome
    finally:
        await again.close()
        await other.close()


async def test_slots_of_a_process_that_died_free_themselves(redis_url: str) -> None:
    now = [1_000.0]
    storage = open_storage(redis_url)
    client = redis_client(storage)
    assert client is not None
    dead, alive = (SharedStreamSlots(client, max_streams=2, clock=lambda: now[0]) for _ in range(2))
    try:
        assert await dead.take("alice") is not None
        assert await dead.take("alice") is not None
        await dead.close()  # killed: it neither gives its slots back nor renews them
        assert await alive.take("alice") is None

        now[0] += LEASE_SECONDS - 1
        assert await alive.take("alice") is None
        now[0] += 2
        kept = await alive.take("alice")
        assert kept is not None

        # A live process's renewals keep its slot however long the stream lasts.
        now[0] += LEASE_SECONDS - 1
        await alive.renew()
        now[0] += LEASE_SECONDS - 1
        assert await alive.take("alice") is not None
        assert await alive.take("alice") is None
        await alive.give_back(kept)
        assert await alive.take("alice") is not None
    finally:
        await dead.close()
        await alive.close()


async def test_an_open_stream_keeps_renewing_its_slot(redis_url: str) -> None:
    now = [1_000.0]
    ticks: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def sleep(seconds: float) -> None:
        assert seconds == LEASE_SECONDS / 3
        woken = asyncio.Event()
        await ticks.put(woken)
        await woken.wait()

    client = redis_client(open_storage(redis_url))
    holder = SharedStreamSlots(client, max_streams=1, clock=lambda: now[0], sleep=sleep)
    other = SharedStreamSlots(client, max_streams=1, clock=lambda: now[0])
    try:
        lease = await holder.take("alice")
        assert lease is not None
        sleeping = await ticks.get()
        for _ in range(5):  # two and a half leases long
            now[0] += LEASE_SECONDS / 2
            sleeping.set()
            sleeping = await ticks.get()  # renewed, and asleep again
            assert await other.take("alice") is None
        # Given back, the slot is free at once.
        await holder.give_back(lease)
        assert await other.take("alice") is not None
        sleeping.set()
    finally:
        await holder.close()
        await other.close()


# --- the store going away ------------------------------------------------------------


async def test_fail_closed_refuses_while_redis_is_down_and_recovers(
    fault_app: FaultAppFactory, own_redis: RedisServer
) -> None:
    app = await fault_app(**shared(own_redis.url, AIPASTA_RATE_LIMIT_FAIL="closed"))
    assert (await post(app)).status == 200

    own_redis.stop()
    refused = await post(app)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "5"
    (error,) = refused.body["errors"]
    assert without_request_id(error["extensions"], refused.headers["X-Request-ID"]) == {
        "code": "SERVICE_UNAVAILABLE",
        "details": {"dependency": "rateLimitStore"},
        "retryAfter": 5,
    }
    assert "store is unreachable" in error["message"]
    assert await metric(app, "aipasta_rate_limit_store_up") == 0
    _, health = await app.get("/health")
    assert (health["status"], health["services"]["rateLimitStore"]) == (
        "degraded",
        "disconnected",
    )
    # A stream is refused the same way, before any upstream is asked.
    ws = await GraphQLWebSocket.open(app)
    try:
        outcome = await ws.run(CHAT_STREAM, STREAM)
        assert [e["extensions"]["code"] for e in outcome.errors] == ["SERVICE_UNAVAILABLE"]
    finally:
        await ws.close()

    own_redis.start()
    assert (await post(app)).status == 200
    _, health = await app.get("/health")
    assert (health["status"], health["services"]["rateLimitStore"]) == ("ok", "connected")
    assert await metric(app, "aipasta_rate_limit_store_up") == 1


async def test_fail_open_lets_requests_through_while_redis_is_down_and_limits_again(
    fault_app: FaultAppFactory, own_redis: RedisServer
) -> None:
    app = await fault_app(**shared(own_redis.url, AIPASTA_RATE_LIMIT="2/minute"))
    assert (await post(app)).status == 200

    own_redis.stop()
    assert [(await post(app)).status for _ in range(3)] == [200, 200, 200]
    _, health = await app.get("/health")
    assert health["services"]["rateLimitStore"] == "disconnected"
    assert await metric(app, "aipasta_rate_limit_store_failures_total") >= 3

    own_redis.start()  # empty: the counts from before are gone
    assert [(await post(app)).status for _ in range(3)] == [200, 200, 429]
    _, health = await app.get("/health")
    assert health["services"]["rateLimitStore"] == "connected"


# --- a store that cannot be used -----------------------------------------------------


def serve_with_store(tmp_path: Path, uri: str) -> subprocess.CompletedProcess[str]:
    aipasta = Path(sys.executable).parent / "aipasta"
    return subprocess.run(
        [str(aipasta), "serve", "--port", "1"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("AIPASTA_")},
            "AIPASTA_RATE_LIMIT_STORAGE": uri,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_missing_store_client_stops_the_start_with_one_line(tmp_path: Path) -> None:
    # memcached's client is not installed here; Redis's missing is tested just below.
    result = serve_with_store(tmp_path, "memcached://user:s3cret@127.0.0.1:11211")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "aipasta: AIPASTA_RATE_LIMIT_STORAGE=memcached://127.0.0.1:11211 needs "
        "memcachio>=0.3, which is not installed: pip install 'limits[async-memcached]'"
    ]


@pytest.mark.parametrize(
    ("installed", "problem"),
    [
        pytest.param(None, "coredis<6,>=3.4.0, which is not installed", id="missing"),
        # coredis 6 connects lazily in a way limits 5 never triggers: every check would
        # fail, letting every request through with a healthy Redis.
        pytest.param(
            "6.9.0",
            "coredis<6,>=3.4.0 (the version limits supports), not coredis 6.9.0",
            id="unsupported",
        ),
    ],
)
def test_the_redis_client_must_be_one_limits_supports(
    monkeypatch: pytest.MonkeyPatch, installed: str | None, problem: str
) -> None:
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name != "coredis":
            return real_version(name)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    # The module resolvers.limits.store reads installed versions through.
    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(StoreConfigError) as refused:
        open_storage("redis://:hunter2@cache.internal:6380/0")
    assert str(refused.value) == (
        f"AIPASTA_RATE_LIMIT_STORAGE=redis://cache.internal:6380 needs {problem}: "
        "pip install 'aipasta[redis]'"
    )
