"""API keys in MongoDB: create, list, revoke, and the single indexed lookup behind verification."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ReturnDocument

from documents.api_key import ApiKey
from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from resolvers.errors import KeyInputError
from resolvers.identity.api_key import (
    PREFIX_DISPLAY_LENGTH,
    hash_api_key,
    key_prefix,
    looks_like_api_key,
    new_api_key,
)
from resolvers.identity.identity import Role

MIN_PREFIX = 6
PREFIX_CHARS = re.compile(r"[A-Za-z0-9_-]+")
USER_ID = re.compile(r"[A-Za-z0-9_.@:-]{1,128}")
MAX_NAME = 100
# lastUsedAt is informative; writing it on every request would put a write on the hot path.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    key: str
    record: ApiKey


def check_user_id(user_id: str) -> str:
    if not USER_ID.fullmatch(user_id):
        raise KeyInputError("user id must be 1-128 characters of letters, digits and _.@:-")
    return user_id


def check_name(name: str) -> str:
    name = name.strip()
    if len(name) > MAX_NAME or "\x00" in name:
        raise KeyInputError(f"name must be at most {MAX_NAME} characters")
    return name


class ApiKeyStore:
    def __init__(self, database: Database | None) -> None:
        self._database = database

    def _db(self) -> Database:
        if self._database is None:
            raise DatabaseUnavailable()
        return self._database

    async def create(self, *, user_id: str, name: str = "", admin: bool = False) -> CreatedKey:
        key, key_hash = new_api_key()
        record = ApiKey(
            keyHash=key_hash,
            prefix=key_prefix(key),
            userId=check_user_id(user_id),
            name=check_name(name),
            role=(Role.ADMIN if admin else Role.USER).value,
            createdAt=datetime.now(UTC),
        )
        async with self._db().guard():
            await record.insert()
        return CreatedKey(key=key, record=record)

    async def find(self, key_hash: str) -> ApiKey | None:
        async with self._db().guard():
            return await ApiKey.find_one(equal(keyHash=key_hash))

    async def count(self) -> int:
        async with self._db().guard():
            return await ApiKey.find_all().count()

    async def list(self) -> list[ApiKey]:
        async with self._db().guard():
            return await ApiKey.find_all().sort("+createdAt").to_list()

    async def revoke(self, prefix: str) -> ApiKey:
        """Revoke the one live key that the whole key, or its shown prefix, names."""
        prefix = prefix.strip()
        async with self._db().guard():
            if looks_like_api_key(prefix):
                matches = await ApiKey.find(
                    equal(keyHash=hash_api_key(prefix), revoked=False)
                ).to_list()
            elif MIN_PREFIX <= len(prefix) <= PREFIX_DISPLAY_LENGTH and PREFIX_CHARS.fullmatch(
                prefix
            ):
                matches = await ApiKey.find(
                    {"prefix": {"$regex": "^" + re.escape(prefix)}, **equal(revoked=False)}
                ).to_list()
            else:
                raise KeyInputError(
                    f"give the key or its first {MIN_PREFIX}-{PREFIX_DISPLAY_LENGTH} characters"
                )
            if not matches:
                raise KeyInputError("no live key has that prefix")
            if len(matches) > 1:
                raise KeyInputError(f"{len(matches)} keys start with that prefix; give more of it")
            updated = await ApiKey.get_pymongo_collection().find_one_and_update(
                equal(_id=matches[0].id, revoked=False),
                {"$set": {"revoked": True, "revokedAt": datetime.now(UTC)}},
                return_document=ReturnDocument.AFTER,
            )
        if updated is None:
            raise KeyInputError("no live key has that prefix")
        revoked: ApiKey = ApiKey.model_validate(updated)
        return revoked

    async def touch(self, record: ApiKey, now: datetime) -> None:
        last = record.lastUsedAt
        if last is not None and now - last < LAST_USED_RESOLUTION:
            return
        async with self._db().guard():
            await ApiKey.get_pymongo_collection().update_one(
                equal(_id=record.id), {"$set": {"lastUsedAt": now}}
            )
