"""The last good model list of each provider, shared by every gateway process."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from beanie import Document, Indexed
from pydantic import BaseModel
from pymongo import ASCENDING, IndexModel

# A stale list beats no list: keep it a week past expiry before MongoDB drops it.
KEEP_AFTER_EXPIRY_SECONDS = 7 * 24 * 3600


class StoredModel(BaseModel):
    """One model as cached; prices are decimal strings (USD per million tokens) to stay exact."""

    upstreamId: str
    name: str
    description: str | None = None
    contextLength: int | None = None
    inputModalities: list[str]
    outputModalities: list[str]
    promptPerMillion: str | None = None
    completionPerMillion: str | None = None
    perRequest: str | None = None
    perImage: str | None = None
    supportedParameters: list[str] = []
    freeTier: bool = False


class CachedModelList(Document):
    """A provider's model list. MongoDB's TTL monitor deletes it a week after `expiresAt`.

    The document outlives its expiry on purpose: when the provider is down, its last
    good list is still served (marked stale) rather than nothing.
    """

    provider: Annotated[str, Indexed(unique=True)]
    models: list[StoredModel]
    fetchedAt: datetime
    expiresAt: datetime

    class Settings:
        name = "model_catalog"
        indexes = [
            IndexModel(
                [("expiresAt", ASCENDING)],
                name="expiresAt_ttl",
                expireAfterSeconds=KEEP_AFTER_EXPIRY_SECONDS,
            )
        ]
