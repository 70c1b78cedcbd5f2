"""One usage record per model request: who, which model, tokens, cost, timing, outcome.

`cost` is stored as Decimal128, so MongoDB sums it exactly (`$sum` keeps Decimal128;
checked on SecantusDB and standard in MongoDB) and a report's total is the sum of the
exact per-request costs, not of rounded floats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from beanie import DecimalAnnotation, Document
from pymongo import ASCENDING, IndexModel

UsageStatus = Literal["complete", "partial", "failed", "cancelled"]


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
    # USD; 0 when the price is unknown (costKnown false).
    cost: DecimalAnnotation
    costKnown: bool
    latencyMs: float
    timeToFirstTokenMs: float | None = None
    status: UsageStatus
    errorCode: str | None = None
    createdAt: datetime

    class Settings:
        name = "usage_records"
        indexes = [
            IndexModel([("userId", ASCENDING), ("createdAt", ASCENDING)], name="user_created"),
        ]
