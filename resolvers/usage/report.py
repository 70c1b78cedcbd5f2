"""The `usage` field: the signed-in user's usage records, totalled by MongoDB.

The aggregation runs in the database ($match on the (userId, createdAt) index, then
$group), so a report costs one round trip however many records there are. Costs are
Decimal128 in MongoDB and summed there exactly; they become floats only here, at the
edge. `since` is inclusive and `until` exclusive; days are UTC dates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Decimal128

from documents.errors import DatabaseUnavailable
from documents.filters import equal
from documents.usage import UsageRecord
from resolvers.context import Info
from resolvers.errors import BadUserInput
from schema.types.enums import UsageGroupBy
from schema.types.usage import UsageReport, UsageRow

_GROUP_KEYS: dict[UsageGroupBy, Any] = {
    UsageGroupBy.MODEL: "$model",
    UsageGroupBy.PROVIDER: "$provider",
    UsageGroupBy.DAY: {
        "$dateToString": {"format": "%Y-%m-%d", "date": "$createdAt", "timezone": "UTC"}
    },
}


async def usage(
    info: Info,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: UsageGroupBy | None = UsageGroupBy.MODEL,
) -> UsageReport:
    user_id = info.context.require_user().user_id
    since, until = _as_utc(since), _as_utc(until)
    if since is not None and until is not None and since > until:
        raise BadUserInput("`since` must not be later than `until`", field="since")
    database = info.context.services.database
    if database is None:
        raise DatabaseUnavailable()
    pipeline = _pipeline(user_id, since, until, group_by or UsageGroupBy.MODEL)
    async with database.guard():
        cursor = await UsageRecord.get_pymongo_collection().aggregate(pipeline)
        groups: list[dict[str, Any]] = await cursor.to_list()
    costs = [_decimal(g["totalCost"]) for g in groups]
    return UsageReport(
        rows=[_row(g, cost) for g, cost in zip(groups, costs, strict=True)],
        total_requests=sum(g["requests"] for g in groups),
        total_cost=float(sum(costs, Decimal(0))),
    )


def _as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _pipeline(
    user_id: str, since: datetime | None, until: datetime | None, group_by: UsageGroupBy
) -> list[dict[str, Any]]:
    match: dict[str, Any] = equal(userId=user_id)
    created: dict[str, datetime] = {}
    if since is not None:
        created["$gte"] = since
    if until is not None:
        created["$lt"] = until
    if created:
        match["createdAt"] = created
    # Days read best in date order; models and providers biggest spender first.
    order = {"_id": 1} if group_by is UsageGroupBy.DAY else {"totalCost": -1, "_id": 1}
    return [
        {"$match": match},
        {
            "$group": {
                "_id": _GROUP_KEYS[group_by],
                "requests": {"$sum": 1},
                "promptTokens": {"$sum": "$promptTokens"},
                "completionTokens": {"$sum": "$completionTokens"},
                # $sum skips missing fields: records of older versions count 0.
                "reasoningTokens": {"$sum": "$reasoningTokens"},
                "cachedPromptTokens": {"$sum": "$cachedPromptTokens"},
                "cacheWriteTokens": {"$sum": "$cacheWriteTokens"},
                "totalCost": {"$sum": "$cost"},
                "failedRequests": {"$sum": {"$cond": [{"$eq": ["$status", "failed"]}, 1, 0]}},
                "avgLatencyMs": {"$avg": "$latencyMs"},
                # $avg skips nulls: requests that never produced a token do not count.
                "avgTimeToFirstTokenMs": {"$avg": "$timeToFirstTokenMs"},
            }
        },
        {"$sort": order},
    ]


def _decimal(value: object) -> Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return Decimal(str(value))


def _row(group: dict[str, Any], cost: Decimal) -> UsageRow:
    return UsageRow(
        key=str(group["_id"]),
        requests=group["requests"],
        prompt_tokens=group["promptTokens"],
        completion_tokens=group["completionTokens"],
        reasoning_tokens=group["reasoningTokens"],
        cached_prompt_tokens=group["cachedPromptTokens"],
        cache_write_tokens=group["cacheWriteTokens"],
        total_cost=float(cost),
        failed_requests=group["failedRequests"],
        avg_latency_ms=_float_or_none(group["avgLatencyMs"]),
        avg_time_to_first_token_ms=_float_or_none(group["avgTimeToFirstTokenMs"]),
    )


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)
