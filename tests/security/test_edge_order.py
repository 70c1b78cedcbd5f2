"""Order and bounds at the edge: the IP's flood guard before sign-in, signed-in users
limited per user, anonymous clients (and refused credentials) per IP, and the cache of
unknown API keys a bounded LRU."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from documents.database import Database
from resolvers.errors import InvalidCredential
from resolvers.identity import authenticator as authenticator_module
from resolvers.identity.api_key import new_api_key
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.security.conftest import TYPENAME, post, rate_limited_body
from tests.security.test_rate_limit import address_message, bearer, user_message
from tests.streaming.conftest import WS_PROTOCOL, GraphQLWebSocket
from tests.support.errors import body_without_request_id
from tests.support.server import RunningApp, StartApp


class KeyLookups:
    """Counts the API-key lookups that reach MongoDB, from its own profiler."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db

    async def start(self) -> None:
        await self.db.command({"profile": 2})

    async def count(self) -> int:
        return await self.db["system.profile"].count_documents(
            {"ns": f"{self.db.name}.api_keys", "op": "query"}
        )


@pytest_asyncio.fixture
async def key_lookups(mongo_uri: str, clean_db: str) -> AsyncIterator[KeyLookups]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    try:
        lookups = KeyLookups(client[clean_db])
        await lookups.start()
        yield lookups
    finally:
        await client.close()


def random_key() -> str:
    return new_api_key()[0]  # well-formed, never stored


async def status_and_limit(app: RunningApp, headers: dict[str, str]) -> tuple[int, Any]:
    answer = await post(app, headers=headers)
    if answer.status != 200:
        return answer.status, answer.body["errors"][0]["extensions"]["limit"]
    return answer.status, answer.body["data"]


def refused(body: dict[str, Any], message: Callable[[int], str], limit: int) -> bool:
    """Whether `body` is the 429 answer of `limit`, with the message `message` makes."""
    retry_after = body["errors"][0]["extensions"]["retryAfter"]
    return body_without_request_id(body) == rate_limited_body(
        message(retry_after), retry_after, limit
    )


# --- HTTP ---------------------------------------------------------------------------


async def test_over_the_flood_guard_random_keys_cause_no_key_lookup(
    start_app: StartApp, key_lookups: KeyLookups
) -> None:
    app = await start_app(
        AIPASTA_AUTH="required", AIPASTA_RATE_LIMIT="2/minute", AIPASTA_IP_FLOOD_LIMIT="5/minute"
    )
    before = await key_lookups.count()
    answers = [await status_and_limit(app, bearer(random_key())) for _ in range(8)]

    # A refused key counts as anonymous: 2 per minute from this address, then the
    # flood guard (5) refuses before the key is even looked at.
    typename = {"__typename": "Query"}
    assert answers == [(200, typename)] * 2 + [(429, 2)] * 3 + [(429, 5)] * 3
    assert await key_lookups.count() - before == 5


async def test_users_behind_one_address_each_have_their_own_budget(
    start_app: StartApp, database: Database
) -> None:
    keys = ApiKeyStore(database)
    alice = bearer((await keys.create(user_id="alice")).key)
    bob = bearer((await keys.create(user_id="bob")).key)
    # One address (a Next.js server) for everyone.
    app = await start_app(
        AIPASTA_AUTH="required",
        AIPASTA_RATE_LIMIT="2/minute",
        AIPASTA_USER_RATE_LIMIT="3/minute",
        AIPASTA_IP_FLOOD_LIMIT="100/minute",
    )
    typename = {"__typename": "Query"}
    assert [await status_and_limit(app, alice) for _ in range(4)] == [(200, typename)] * 3 + [
        (429, 3)
    ]
    refusal = await post(app, headers=alice)
    assert refused(refusal.body, user_message, 3)
    # Alice's refusals cost bob nothing, and the anonymous budget is its own.
    assert [await status_and_limit(app, bob) for _ in range(3)] == [(200, typename)] * 3
    assert [await status_and_limit(app, {}) for _ in range(3)] == [(200, typename)] * 2 + [(429, 2)]
    anonymous = await post(app)
    assert refused(anonymous.body, address_message, 2)


async def test_the_flood_guard_counts_every_user_of_one_address(
    start_app: StartApp, database: Database
) -> None:
    keys = ApiKeyStore(database)
    alice = bearer((await keys.create(user_id="alice")).key)
    bob = bearer((await keys.create(user_id="bob")).key)
    app = await start_app(
        AIPASTA_AUTH="required",
        AIPASTA_USER_RATE_LIMIT="100/minute",
        AIPASTA_IP_FLOOD_LIMIT="4/minute",
    )
    for headers in (alice, bob, alice, bob):
        assert (await post(app, headers=headers)).status == 200
    refusal = await post(app, headers=alice)
    assert refusal.status == 429
    assert refused(refusal.body, address_message, 4)


# --- websockets ---------------------------------------------------------------------


async def open_ws(app: RunningApp, authorization: str | None) -> GraphQLWebSocket:
    ws = await app.http.ws_connect(f"{app.base_url}/graphql", protocols=(WS_PROTOCOL,))
    client = GraphQLWebSocket(ws)
    payload = {"Authorization": authorization} if authorization else {}
    await ws.send_json({"type": "connection_init", "payload": payload})
    assert (await ws.receive_json()) == {"type": "connection_ack"}
    return client


async def subscribe_outcomes(ws: GraphQLWebSocket, times: int) -> list[Any]:
    outcomes: list[Any] = []
    for _ in range(times):
        outcome = await ws.run(TYPENAME, {})
        if outcome.rejected:
            (error,) = outcome.errors
            outcomes.append((error["extensions"]["code"], error["extensions"]["limit"]))
        else:
            outcomes.append(outcome.events)
    return outcomes


async def test_websocket_subscribes_follow_the_same_rules(
    start_app: StartApp, database: Database
) -> None:
    keys = ApiKeyStore(database)
    alice = (await keys.create(user_id="alice")).key
    app = await start_app(
        AIPASTA_AUTH="required",
        AIPASTA_RATE_LIMIT="1/minute",
        AIPASTA_USER_RATE_LIMIT="3/minute",
        AIPASTA_IP_FLOOD_LIMIT="6/minute",
    )
    signed_in = await open_ws(app, f"Bearer {alice}")
    anonymous = await open_ws(app, None)
    try:
        ok = ["Query"]
        assert await subscribe_outcomes(signed_in, 4) == [ok] * 3 + [("RATE_LIMITED", 3)]
        assert await subscribe_outcomes(anonymous, 2) == [ok, ("RATE_LIMITED", 1)]
        # 4 + 2 so far from this address: the 7th operation meets the flood guard.
        assert await subscribe_outcomes(anonymous, 1) == [("RATE_LIMITED", 6)]
    finally:
        await signed_in.close()
        await anonymous.close()


# --- the key cache ------------------------------------------------------------------


async def test_unknown_keys_are_a_bounded_lru_that_never_evicts_a_verified_key(
    tmp_path: Path,
    database: Database,
    key_lookups: KeyLookups,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(authenticator_module, "MAX_CACHED_KEYS", 3)
    keys = ApiKeyStore(database)
    alice = (await keys.create(user_id="alice")).key
    authenticator = Authenticator(
        make_settings(tmp_path, AIPASTA_KEY_CACHE_SECONDS=60), keys, monotonic=lambda: 1000.0
    )
    unknown = [random_key() for _ in range(5)]

    async def lookups_for(*tokens: str) -> int:
        before = await key_lookups.count()
        for token in tokens:
            with contextlib.suppress(InvalidCredential):
                await authenticator.authenticate(f"Bearer {token}")
        return await key_lookups.count() - before

    assert await lookups_for(alice, *unknown[:3]) == 4
    # Cached: the verified key and the three unknown ones.
    assert await lookups_for(alice, unknown[0], unknown[1], unknown[2]) == 0
    # Two more unknown keys push out the two least recently used (unknown 0 and 1) only.
    assert await lookups_for(unknown[2], unknown[3], unknown[4]) == 2
    assert await lookups_for(alice, unknown[2], unknown[3], unknown[4]) == 0
    assert await lookups_for(unknown[0]) == 1
