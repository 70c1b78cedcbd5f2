"""Administration: API keys. Merged into the Query and Mutation roots."""

from __future__ import annotations

from datetime import datetime

import strawberry

from resolvers.admin import api_keys
from resolvers.admin.api_keys import ApiKeyView, CreatedApiKeyView


@strawberry.type
class ApiKey:
    prefix: str = strawberry.field(description="The key's first characters, to tell keys apart.")
    user_id: str
    name: str
    role: str = strawberry.field(description="user or admin")
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


@strawberry.type
class CreatedApiKey:
    key: str = strawberry.field(description="The new key. Shown only now; only its hash is kept.")
    api_key: ApiKey


@strawberry.type
class AdminQuery:
    api_keys: list[ApiKeyView] = strawberry.field(
        resolver=api_keys.api_keys,
        graphql_type=list[ApiKey],
        description="Every API key (never the keys themselves). Admin only.",
    )


@strawberry.type
class AdminMutation:
    create_api_key: CreatedApiKeyView = strawberry.mutation(
        resolver=api_keys.create_api_key,
        graphql_type=CreatedApiKey,
        description="A new API key for a user. Admin only.",
    )
    revoke_api_key: ApiKeyView = strawberry.mutation(
        resolver=api_keys.revoke_api_key,
        graphql_type=ApiKey,
        description="Revoke a key by its prefix (or the whole key). Admin only.",
    )
