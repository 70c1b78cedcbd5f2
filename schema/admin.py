"""Administration: API keys. Merged into the Query and Mutation roots."""

from __future__ import annotations

import strawberry

from resolvers.admin import api_keys
from schema.types.admin import ApiKey, CreatedApiKey


@strawberry.type
class AdminQuery:
    api_keys: list[ApiKey] = strawberry.field(
        resolver=api_keys.api_keys,
        description="Every API key (never the keys themselves). Admin only.",
    )


@strawberry.type
class AdminMutation:
    create_api_key: CreatedApiKey = strawberry.mutation(
        resolver=api_keys.create_api_key,
        description="A new API key for a user. Admin only.",
    )
    revoke_api_key: ApiKey = strawberry.mutation(
        resolver=api_keys.revoke_api_key,
        description="Revoke a key by its prefix (or the whole key). Admin only.",
    )
