"""Admin fields for API keys: `createApiKey`, `apiKeys`, `revokeApiKey`."""

from __future__ import annotations

from documents.api_key import ApiKey as ApiKeyRecord
from resolvers.context import Info
from resolvers.errors import BadUserInput, KeyInputError
from schema.types.admin import ApiKey, CreatedApiKey


def api_key_of(record: ApiKeyRecord) -> ApiKey:
    return ApiKey(
        prefix=record.prefix,
        user_id=record.userId,
        name=record.name,
        role=record.role,
        created_at=record.createdAt,
        last_used_at=record.lastUsedAt,
        revoked=record.revoked,
    )


async def create_api_key(
    info: Info, user_id: str, name: str | None = None, admin: bool = False
) -> CreatedApiKey:
    info.context.require_admin()
    try:
        created = await info.context.services.keys.create(
            user_id=user_id, name=name or "", admin=admin
        )
    except KeyInputError as exc:
        raise BadUserInput(str(exc), field="userId" if "user id" in str(exc) else "name") from None
    return CreatedApiKey(key=created.key, api_key=api_key_of(created.record))


async def api_keys(info: Info) -> list[ApiKey]:
    info.context.require_admin()
    return [api_key_of(r) for r in await info.context.services.keys.list()]


async def revoke_api_key(info: Info, prefix: str) -> ApiKey:
    info.context.require_admin()
    try:
        record = await info.context.services.keys.revoke(prefix)
    except KeyInputError as exc:
        raise BadUserInput(str(exc), field="prefix") from None
    # This process forgets at once; others within their cache window.
    info.context.services.authenticator.forget()
    return api_key_of(record)
