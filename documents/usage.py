"""One usage record per model request: who, which model, tokens, cost, timing, outcome.

`cost` is stored as Decimal128, so MongoDB sums it exactly (`$sum` keeps Decimal128;
checked on SecantusDB and standard in MongoDB) and a report's total is the sum of the
exact per-request costs, not of rounded floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from beanie import DecimalAnnotation, Document
from pydantic import BeforeValidator, PlainSerializer
from pymongo import ASCENDING, IndexModel

from providers.chat import TokenUsage


def stored_usage(usage: TokenUsage) -> dict[str, int | bool]:
    """The token counts under their stored names: a usage record's fields, a saved
    answer's `usage`. The upstream's reported cost is not kept with them."""
    return {
        "promptTokens": usage.prompt_tokens,
        "completionTokens": usage.completion_tokens,
        "totalTokens": usage.total_tokens,
        "estimated": usage.estimated,
        "reasoningTokens": usage.reasoning_tokens,
        "cachedPromptTokens": usage.cached_prompt_tokens,
        "cacheWriteTokens": usage.cache_write_tokens,
    }


def _read_usage(value: object) -> object:
    if not isinstance(value, Mapping):
        return value
    # Counts an older version left out read as 0.
    return TokenUsage(
        prompt_tokens=value.get("promptTokens") or 0,
        completion_tokens=value.get("completionTokens") or 0,
        total_tokens=value.get("totalTokens") or 0,
        estimated=bool(value.get("estimated", False)),
        reasoning_tokens=value.get("reasoningTokens") or 0,
        cached_prompt_tokens=value.get("cachedPromptTokens") or 0,
        cache_write_tokens=value.get("cacheWriteTokens") or 0,
    )


StoredUsage = Annotated[
    TokenUsage, BeforeValidator(_read_usage), PlainSerializer(stored_usage, return_type=dict)
]
"""A `TokenUsage` field of a document, stored under `stored_usage`'s names. Beanie
encodes through the document's `bson_encoders`, so a document with one lists
`USAGE_ENCODERS` there."""

USAGE_ENCODERS = {TokenUsage: stored_usage}


class UsageRecord(Document):
    userId: str
    # The GraphQL request; a `compare` writes one record per model under the same id.
    requestId: str
    # Full catalog id, "<provider>:<upstream id>".
    model: str
    provider: str
    promptTokens: int
    completionTokens: int
    totalTokens: int
    # The provider reported no counts; these are the gateway's estimate.
    estimated: bool = False
    # Of the completion tokens, those spent thinking; of the prompt tokens, those read
    # from and written to the provider's prompt cache (0 in records of older versions).
    reasoningTokens: int = 0
    cachedPromptTokens: int = 0
    cacheWriteTokens: int = 0
    # USD; 0 when the price is unknown (costKnown false).
    cost: DecimalAnnotation
    costKnown: bool
    latencyMs: float
    timeToFirstTokenMs: float | None = None
    # complete, partial or failed (the run's MessageStatus, in lower case), or cancelled.
    status: str
    errorCode: str | None = None
    createdAt: datetime

    class Settings:
        name = "usage_records"
        indexes = [
            IndexModel([("userId", ASCENDING), ("createdAt", ASCENDING)], name="user_created"),
        ]
