"""Every Beanie document the gateway uses, for init_beanie."""

from __future__ import annotations

from beanie import Document

from documents.catalog import CachedModelList


def document_models() -> list[type[Document]]:
    return [CachedModelList]
