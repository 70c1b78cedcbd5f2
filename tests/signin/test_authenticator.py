"""Each credential kind proves a user; refused ones say why; revocation takes effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from documents.database import Database
from resolvers.errors import (
    ExpiredCredential,
    InvalidCredential,
    MalformedCredential,
    RevokedCredential,
)
from resolvers.identity.api_key import new_api_key
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.identity import AuthMethod, Role
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.signin.conftest import JWT_SECRET, NEXTAUTH_SECRET, make_jwt, make_nextauth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(ApiKeyStore):
    lookups = 0

    async def find(self, key_hash: str):  # type: ignore[no-untyped-def]
        self.lookups += 1
        return await super().find(key_hash)


def authenticator(
    tmp_path: Path, database: Database | None, clock: Clock | None = None, **env: object
) -> tuple[Authenticator, CountingStore]:
    settings = make_settings(
        tmp_path, NEXTAUTH_SECRET=NEXTAUTH_SECRET, AIPASTA_JWT_SECRET=JWT_SECRET, **env
    )
    store = CountingStore(database)
    return Authenticator(settings, store, monotonic=clock or Clock()), store


async def test_api_key_proves_its_user_and_role(tmp_path: Path, database: Database) -> None:
    auth, store = authenticator(tmp_path, database)
    created = await store.create(user_id="alice", admin=True)
    identity = await auth.authenticate(f"Bearer {created.key}")
    assert identity is not None
    assert (identity.user_id, identity.role, identity.via) == (
        "alice",
        Role.ADMIN,
        AuthMethod.API_KEY,
    )


async def test_verified_key_is_cached_then_looked_up_again(
    tmp_path: Path, database: Database
) -> None:
    clock = Clock()
    auth, store = authenticator(tmp_path, database, clock)
    created = await store.create(user_id="alice")
    for _ in range(50):
        await auth.authenticate(f"Bearer {created.key}")
    assert store.lookups == 1
    clock.now += 6
    await auth.authenticate(f"Bearer {created.key}")
    assert store.lookups == 2


async def test_revocation_takes_effect_within_the_cache_window(
    tmp_path: Path, database: Database
) -> None:
    clock = Clock()
    auth, store = authenticator(tmp_path, database, clock)
    created = await store.create(user_id="alice")
    assert await auth.authenticate(f"Bearer {created.key}") is not None
    await store.revoke(created.record.prefix)
    clock.now += 5.1
    with pytest.raises(RevokedCredential):
        await auth.authenticate(f"Bearer {created.key}")


async def test_unknown_key_is_refused_and_not_looked_up_every_time(
    tmp_path: Path, database: Database
) -> None:
    auth, store = authenticator(tmp_path, database)
    unknown, _ = new_api_key()
    for _ in range(3):
        with pytest.raises(InvalidCredential):
            await auth.authenticate(f"Bearer {unknown}")
    assert store.lookups == 1


async def test_last_used_time_is_recorded(tmp_path: Path, database: Database) -> None:
    auth, store = authenticator(tmp_path, database)
    created = await store.create(user_id="alice")
    await auth.authenticate(f"Bearer {created.key}")
    (listed,) = await store.list()
    assert listed.lastUsedAt is not None


async def test_jwt_and_nextauth_tokens(tmp_path: Path) -> None:
    auth, _ = authenticator(tmp_path, None)
    identity = await auth.authenticate(f"Bearer {make_jwt('bob')}")
    assert identity is not None and (identity.user_id, identity.via) == ("bob", AuthMethod.JWT)
    identity = await auth.authenticate(f"Bearer {make_nextauth('carol')}")
    assert identity is not None
    assert (identity.user_id, identity.via) == ("carol", AuthMethod.NEXTAUTH)
    assert identity.role is Role.USER


async def test_jwt_secret_falls_back_to_nextauth_secret(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, NEXTAUTH_SECRET=NEXTAUTH_SECRET)
    auth = Authenticator(settings, ApiKeyStore(None))
    identity = await auth.authenticate(f"Bearer {make_jwt('dan', secret=NEXTAUTH_SECRET)}")
    assert identity is not None and identity.user_id == "dan"


async def test_audience_and_issuer_are_checked_when_configured(tmp_path: Path) -> None:
    auth, _ = authenticator(
        tmp_path, None, AIPASTA_JWT_AUDIENCE="aipasta", AIPASTA_JWT_ISSUER="https://chat"
    )
    good = make_jwt("erin", aud="aipasta", iss="https://chat")
    assert await auth.authenticate(f"Bearer {good}") is not None
    with pytest.raises(InvalidCredential):
        await auth.authenticate(f"Bearer {make_jwt('erin', aud='other', iss='https://chat')}")


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("Bearer " + make_jwt("x", ttl=-120), ExpiredCredential),
        (
            "Bearer " + make_jwt("x", secret="wrong-secret-wrong-secret-wrong-secret"),
            InvalidCredential,
        ),
        ("Bearer " + make_jwt("x")[:-3] + "abc", InvalidCredential),
        ("Bearer " + make_nextauth("x", ttl=-120), ExpiredCredential),
        (
            "Bearer " + make_nextauth("x", secret="another-secret-another-secret-1234"),
            InvalidCredential,
        ),
        ("Basic dXNlcjpwYXNz", MalformedCredential),
        ("Bearer not.a.token.at.all.really", MalformedCredential),
        ("Bearer ", MalformedCredential),
    ],
)
async def test_refused_credentials(tmp_path: Path, header: str, error: type[Exception]) -> None:
    auth, _ = authenticator(tmp_path, None)
    with pytest.raises(error) as info:
        await auth.authenticate(header)
    assert JWT_SECRET not in str(info.value) and NEXTAUTH_SECRET not in str(info.value)


async def test_token_kinds_without_a_configured_secret_are_refused(tmp_path: Path) -> None:
    auth = Authenticator(make_settings(tmp_path), ApiKeyStore(None))
    with pytest.raises(InvalidCredential, match="AIPASTA_JWT_SECRET"):
        await auth.authenticate(f"Bearer {make_jwt('x')}")
    with pytest.raises(InvalidCredential, match="NEXTAUTH_SECRET"):
        await auth.authenticate(f"Bearer {make_nextauth('x')}")


async def test_no_header_is_anonymous(tmp_path: Path) -> None:
    auth, _ = authenticator(tmp_path, None)
    assert await auth.authenticate(None) is None
