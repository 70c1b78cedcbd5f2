"""Reading and writing provider model lists in MongoDB (the shared, second cache layer)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from documents.catalog import CachedModelList, StoredModel
from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from providers.model import ModelInfo, Pricing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredList:
    models: tuple[ModelInfo, ...]
    fetched_at: datetime
    expires_at: datetime


class CatalogStore:
    """Best effort: with MongoDB away the catalog still works from memory."""

    def __init__(self, database: Database | None) -> None:
        self._database = database

    async def load(self, provider: str) -> StoredList | None:
        if self._database is None:
            return None
        try:
            async with self._database.guard():
                document = await CachedModelList.find_one(equal(provider=provider))
        except DatabaseUnavailable:
            return None
        if document is None:
            return None
        return StoredList(
            models=tuple(_from_stored(provider, m) for m in document.models),
            fetched_at=document.fetchedAt,
            expires_at=document.expiresAt,
        )

    async def save(
        self,
        provider: str,
        models: Sequence[ModelInfo],
        *,
        fetched_at: datetime,
        expires_at: datetime,
    ) -> None:
        if self._database is None:
            return
        stored = [_to_stored(m) for m in models]
        try:
            async with self._database.guard():
                await CachedModelList.find_one(equal(provider=provider)).upsert(
                    {
                        "$set": {
                            "models": [s.model_dump() for s in stored],
                            "fetchedAt": fetched_at,
                            "expiresAt": expires_at,
                        }
                    },
                    on_insert=CachedModelList(
                        provider=provider,
                        models=stored,
                        fetchedAt=fetched_at,
                        expiresAt=expires_at,
                    ),
                )
        except DatabaseUnavailable:
            log.warning("catalog for %s kept in memory only: database unavailable", provider)


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _to_stored(model: ModelInfo) -> StoredModel:
    return StoredModel(
        upstreamId=model.upstream_id,
        name=model.name,
        description=model.description,
        contextLength=model.context_length,
        inputModalities=list(model.input_modalities),
        outputModalities=list(model.output_modalities),
        promptPerMillion=_decimal_text(model.pricing.prompt_per_million),
        completionPerMillion=_decimal_text(model.pricing.completion_per_million),
        perRequest=_decimal_text(model.pricing.per_request),
        perImage=_decimal_text(model.pricing.per_image),
        supportedParameters=list(model.supported_parameters),
        freeTier=model.free_tier,
    )


def _from_stored(provider: str, stored: StoredModel) -> ModelInfo:
    return ModelInfo(
        provider=provider,
        upstream_id=stored.upstreamId,
        name=stored.name,
        description=stored.description,
        context_length=stored.contextLength,
        input_modalities=tuple(stored.inputModalities),
        output_modalities=tuple(stored.outputModalities),
        pricing=Pricing(
            prompt_per_million=_decimal(stored.promptPerMillion),
            completion_per_million=_decimal(stored.completionPerMillion),
            per_request=_decimal(stored.perRequest),
            per_image=_decimal(stored.perImage),
        ),
        supported_parameters=tuple(stored.supportedParameters),
        free_tier=stored.freeTier,
    )
