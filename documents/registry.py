"""Every Beanie document the gateway uses, for init_beanie."""

from __future__ import annotations

from beanie import Document

from documents.api_key import ApiKey
from documents.catalog import CachedModelList
from documents.history import ChatMessage, ChatSession
from documents.usage import UsageRecord
from documents.usage_totals import UsageTotal, UsageTotalsState


def document_models() -> list[type[Document]]:
    return [
        CachedModelList,
        ApiKey,
        ChatMessage,
        ChatSession,
        UsageRecord,
        UsageTotal,
        UsageTotalsState,
    ]
