"""From an `Authorization` header to an Identity.

API keys are looked up by hash (one indexed query) and the answer, good or bad, is
cached for `key_cache_seconds`: a busy client costs one lookup per window, and a
revoked key stops working within that window. Keys that exist (live or revoked) and
keys that do not are cached apart, each a bounded LRU: a flood of random keys only
pushes out other random keys, never a user's verified one. JWTs and NextAuth session
tokens are verified locally, no I/O. `recheck_in` says when a credential's answer may
change (its cache entry ends, its token expires), for connections that outlive one
request.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aipasta.settings import Settings
from documents.errors import DatabaseUnavailable
from resolvers.errors import (
    CredentialError,
    InvalidCredential,
    RevokedCredential,
)
from resolvers.identity.api_key import hash_api_key
from resolvers.identity.bearer import classify, parse_authorization
from resolvers.identity.identity import AuthMethod, Identity, Role
from resolvers.identity.jwt_token import verify_jwt_token
from resolvers.identity.key_store import ApiKeyStore
from resolvers.identity.nextauth import verify_nextauth_session

log = logging.getLogger(__name__)

# Per cache (keys that exist, keys that do not); read when an Authenticator is made.
MAX_CACHED_KEYS = 10_000

Monotonic = Callable[[], float]
WallClock = Callable[[], float]


@dataclass(frozen=True)
class _Cached:
    until: float
    identity: Identity | None
    error: CredentialError | None


class _KeyCache:
    """Answers by key hash, for `until`; past `size` entries the least recently used
    one is dropped (one at a time, never the whole cache)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, _Cached] = OrderedDict()

    def get(self, key_hash: str, now: float) -> _Cached | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.until <= now:
            del self._entries[key_hash]
            return None
        self._entries.move_to_end(key_hash)
        return entry

    def put(self, key_hash: str, entry: _Cached) -> None:
        self._entries[key_hash] = entry
        self._entries.move_to_end(key_hash)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        keys: ApiKeyStore,
        *,
        monotonic: Monotonic = time.monotonic,
        wall_clock: WallClock = time.time,
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._monotonic = monotonic
        self._known = _KeyCache(MAX_CACHED_KEYS)
        self._unknown = _KeyCache(MAX_CACHED_KEYS)
        self._wall_clock = wall_clock

    async def authenticate(self, authorization: str | None) -> Identity | None:
        """The identity a header proves; None when it carries no credential.

        Raises CredentialError for a refused credential and DatabaseUnavailable when an
        API key cannot be checked.
        """
        token = parse_authorization(authorization)
        if token is None:
            return None
        kind = classify(token)
        if kind == "api_key":
            return await self._api_key(token)
        if kind == "jwe":
            return self._nextauth(token)
        return self._jwt(token)

    def recheck_in(self, authorization: str, identity: Identity) -> float | None:
        """Seconds until checking `authorization` again may give another answer than
        `identity`: its token's expiry, or the end of its API key's cache entry (0 when
        not cached). None when the answer cannot change (no credential, auth off)."""
        if identity.expires_at is not None:
            return max(0.0, identity.expires_at - self._wall_clock())
        token = parse_authorization(authorization)
        if token is None or identity.via is not AuthMethod.API_KEY:
            return None
        cached = self._known.get(hash_api_key(token), self._monotonic())
        return 0.0 if cached is None else max(0.0, cached.until - self._monotonic())

    def forget(self) -> None:
        self._known.clear()
        self._unknown.clear()

    async def _api_key(self, key: str) -> Identity:
        key_hash = hash_api_key(key)
        now = self._monotonic()
        cached = self._known.get(key_hash, now) or self._unknown.get(key_hash, now)
        if cached is not None:
            if cached.error is not None:
                raise cached.error
            assert cached.identity is not None
            return cached.identity
        record = await self._keys.find(key_hash)
        identity: Identity | None = None
        error: CredentialError | None = None
        if record is None:
            error = InvalidCredential("unknown API key")
        elif record.revoked:
            error = RevokedCredential("this API key has been revoked")
        else:
            identity = Identity(user_id=record.userId, role=Role(record.role))
            try:
                await self._keys.touch(record, datetime.now(UTC))
            except DatabaseUnavailable:
                log.debug("could not record last use of key %s", record.prefix)
        cache = self._unknown if record is None else self._known
        cache.put(
            key_hash,
            _Cached(until=now + self._settings.key_cache_seconds, identity=identity, error=error),
        )
        if error is not None:
            raise error
        assert identity is not None
        return identity

    def _jwt(self, token: str) -> Identity:
        secret = self._settings.token_secret
        if secret is None:
            raise InvalidCredential("JWTs are not accepted: no AIPASTA_JWT_SECRET is configured")
        verified = verify_jwt_token(
            token,
            secret=secret.get_secret_value(),
            audience=self._settings.jwt_audience,
            issuer=self._settings.jwt_issuer,
        )
        return Identity(
            user_id=verified.user_id, via=AuthMethod.JWT, expires_at=verified.expires_at
        )

    def _nextauth(self, token: str) -> Identity:
        secret = self._settings.nextauth_secret
        if secret is None:
            raise InvalidCredential(
                "session tokens are not accepted: no NEXTAUTH_SECRET is configured"
            )
        verified = verify_nextauth_session(token, secret=secret.get_secret_value())
        return Identity(
            user_id=verified.user_id, via=AuthMethod.NEXTAUTH, expires_at=verified.expires_at
        )
