"""Administration types: API keys."""

from __future__ import annotations

from datetime import datetime

import strawberry


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
