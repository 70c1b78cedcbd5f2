"""API keys, stored only as SHA-256 hashes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from beanie import Document, Indexed


class ApiKey(Document):
    """One key. The key itself is shown once at creation and never stored."""

    keyHash: Annotated[str, Indexed(unique=True)]
    prefix: Annotated[str, Indexed()]
    userId: Annotated[str, Indexed()]
    name: str = ""
    role: str = "user"
    createdAt: datetime
    lastUsedAt: datetime | None = None
    revoked: bool = False
    revokedAt: datetime | None = None

    class Settings:
        name = "api_keys"
