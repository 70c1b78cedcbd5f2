"""Per-user, per-day (UTC), per-model totals of the usage records, for the usage report.

A report over a user's 100,000 records reads a few hundred of these instead of the
records themselves. Two kinds of document hold them, told apart by `source`:

- `live`: what the usage recorder flushed. Each flush adds its records with one bulk
  `$inc` upsert (several processes share the database, so never read-modify-write);
  `batches` keeps the ids of the last flushes applied, so a flush retried after its
  answer was lost is not counted twice.
- `backfill`: the records stored before the totals existed (those without
  `UsageRecord.totalled`), counted once by the start-up backfill. These are set, not
  incremented: a backfill run again, or by two processes at once, writes the same values.

`UsageTotalsState` marks the backfill: claimed by one process at a time (a lease it
renews), then `done`; until it is done the report reads the records themselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from beanie import DecimalAnnotation, Document, Indexed, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, IndexModel

# How many of the last flushes' ids a live total remembers. A retry comes at the next
# flush of the same process; only this many flushes of other processes on the same
# user, day and model in between would make it count twice.
REMEMBERED_BATCHES = 32

LIVE = "live"
BACKFILL = "backfill"


class UsageTotal(Document):
    userId: str
    # Midnight UTC of the day.
    day: datetime
    model: str
    provider: str
    source: Literal["live", "backfill"]
    requests: int = 0
    failedRequests: int = 0
    promptTokens: int = 0
    completionTokens: int = 0
    totalTokens: int = 0
    reasoningTokens: int = 0
    cachedPromptTokens: int = 0
    cacheWriteTokens: int = 0
    # USD, Decimal128: incremented exactly, as the records' `cost` is summed.
    cost: DecimalAnnotation
    # Sums and counts behind the report's averages (requests with a number only).
    latencyMsSum: float = 0.0
    latencyCount: int = 0
    timeToFirstTokenMsSum: float = 0.0
    timeToFirstTokenCount: int = 0
    batches: list[PydanticObjectId] = Field(default_factory=list)

    class Settings:
        name = "usage_totals"
        indexes = [
            # The flush's upsert key, and the report's (userId, day range) query.
            IndexModel(
                [
                    ("userId", ASCENDING),
                    ("day", ASCENDING),
                    ("model", ASCENDING),
                    ("provider", ASCENDING),
                    ("source", ASCENDING),
                ],
                name="user_day_model_provider_source",
                unique=True,
            ),
        ]


BACKFILL_STATE_ID = "backfill"


class UsageTotalsState(Document):
    """One document, `name` "backfill": `running` (by `owner`, until `leaseUntil`) or
    `done`. The unique name makes the first claim atomic: one insert wins."""

    name: Annotated[str, Indexed(unique=True)]
    state: Literal["running", "done"]
    owner: str
    leaseUntil: datetime
    finishedAt: datetime | None = None

    class Settings:
        name = "usage_totals_state"
