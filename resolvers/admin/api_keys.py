"""Admin fields for API keys: `createApiKey`, `apiKeys`, `revokeApiKey`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from documents.api_key import ApiKey
from resolvers.context import Info
from resolvers.errors import BadUserInput, KeyInputError


@dataclass(frozen=True)
class ApiKeyView:
    prefix: str
    user_id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool

    @classmethod
    def of(cls, record: ApiKey) -> ApiKeyView:
        return cls(
            prefix=record.prefix,
            user_id=record.userId,
            name=record.name,
            role=record.role,
            created_at=record.createdAt,
            last_used_at=record.lastUsedAt,
            revoked=record.revoked,
        )


@dataclass(frozen=True)
class CreatedApiKeyView:
    key: str
    api_key: ApiKeyView


async def create_api_key(
    info: Info, user_id: str, name: str | None = None, admin: bool = False
) -> CreatedApiKeyView:
    info.context.require_admin()
    try:
        created = await info.context.services.keys.create(
            user_id=user_id, name=name or "", admin=admin
        )
    except KeyInputError as exc:
        raise BadUserInput(str(exc), field="userId" if "user id" in str(exc) else "name") from None
    return CreatedApiKeyView(key=created.key, api_key=ApiKeyView.of(created.record))


async def api_keys(info: Info) -> list[ApiKeyView]:
    info.context.require_admin()
    return [ApiKeyView.of(r) for r in await info.context.services.keys.list()]


async def revoke_api_key(info: Info, prefix: str) -> ApiKeyView:
    info.context.require_admin()
    try:
        record = await info.context.services.keys.revoke(prefix)
    except KeyInputError as exc:
        raise BadUserInput(str(exc), field="prefix") from None
    # This process forgets at once; others within their cache window.
    info.context.services.authenticator.forget()
    return ApiKeyView.of(record)
