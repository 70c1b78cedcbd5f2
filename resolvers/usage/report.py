"""The `usage` field: the signed-in user's usage, totalled.

Whole UTC days come from the per-day totals (documents.usage_totals): a report over a
user's 100,000 records reads a few hundred totals. The records themselves are read for
what the totals cannot answer: a `since` or `until` in the middle of a day (the part of
that day inside the range), and everything until the start-up backfill has counted the
records from before the totals existed. Both give the same figures: the totals are sums
of the same fields, costs Decimal128 summed exactly, averages sum / count.

The record queries run in the database ($match on the (userId, createdAt) index, then
$group), one round trip however many records. Costs become floats only here, at the
edge. `since` is inclusive and `until` exclusive; days are UTC dates.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from documents.usage import UsageRecord
from documents.usage_totals import UsageTotal
from resolvers.context import Info
from resolvers.errors import BadUserInput
from resolvers.usage.totals import SUM_FIELDS, Sums, totals_ready, utc_day
from schema.types.enums import UsageGroupBy
from schema.types.usage import UsageReport, UsageRow

_RECORD_KEYS: dict[UsageGroupBy, Any] = {
    UsageGroupBy.MODEL: "$model",
    UsageGroupBy.PROVIDER: "$provider",
    UsageGroupBy.DAY: {
        "$dateToString": {"format": "%Y-%m-%d", "date": "$createdAt", "timezone": "UTC"}
    },
}
_ONE_DAY = timedelta(days=1)
_TOTAL_FIELDS = {name: 1 for name in (*SUM_FIELDS, "day", "model", "provider")}


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
    groups = await usage_groups(database, user_id, since, until, group_by or UsageGroupBy.MODEL)
    return report(groups, group_by or UsageGroupBy.MODEL)


async def usage_groups(
    database: Database,
    user_id: str,
    since: datetime | None,
    until: datetime | None,
    group_by: UsageGroupBy,
    *,
    use_totals: bool = True,
) -> dict[str, Sums]:
    """The user's usage in [since, until) summed per report key: from the totals where
    they answer, else (or with `use_totals` false) from the records."""
    async with database.guard():
        if not (use_totals and await totals_ready(database)):
            return await _from_records(user_id, since, until, group_by)
        whole_from = None if since is None else _day_at_or_after(since)
        whole_until = None if until is None else utc_day(until)
        if whole_from is not None and whole_until is not None and whole_from >= whole_until:
            # Not one whole day in the range.
            return await _from_records(user_id, since, until, group_by)
        groups = await _from_totals(user_id, whole_from, whole_until, group_by)
        # The parts of the first and last days that the range cuts.
        if since is not None and whole_from is not None and since < whole_from:
            _merge(groups, await _from_records(user_id, since, whole_from, group_by))
        if until is not None and whole_until is not None and whole_until < until:
            _merge(groups, await _from_records(user_id, whole_until, until, group_by))
        return groups


def report(groups: dict[str, Sums], group_by: UsageGroupBy) -> UsageReport:
    items = [(key, sums) for key, sums in groups.items() if sums.requests]
    # Days read best in date order; models and providers biggest spender first.
    if group_by is UsageGroupBy.DAY:
        items.sort(key=lambda item: item[0])
    else:
        items.sort(key=lambda item: (-item[1].cost, item[0]))
    return UsageReport(
        rows=[_row(key, sums) for key, sums in items],
        total_requests=sum(sums.requests for _, sums in items),
        total_cost=float(sum((sums.cost for _, sums in items), Decimal(0))),
    )


def _as_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _day_at_or_after(moment: datetime) -> datetime:
    day = utc_day(moment)
    return day if day == moment else day + _ONE_DAY


def _merge(into: dict[str, Sums], groups: dict[str, Sums]) -> None:
    for key, sums in groups.items():
        if key in into:
            into[key].add(sums)
        else:
            into[key] = sums


async def _from_totals(
    user_id: str, since: datetime | None, until: datetime | None, group_by: UsageGroupBy
) -> dict[str, Sums]:
    query: dict[str, Any] = equal(userId=user_id)
    days: dict[str, datetime] = {}
    if since is not None:
        days["$gte"] = since
    if until is not None:
        days["$lt"] = until
    if days:
        query["day"] = days
    cursor = UsageTotal.get_pymongo_collection().find(query, _TOTAL_FIELDS)
    groups: dict[str, Sums] = {}
    async for total in cursor:
        if group_by is UsageGroupBy.DAY:
            key = utc_day(total["day"]).strftime("%Y-%m-%d")
        else:
            key = total["model" if group_by is UsageGroupBy.MODEL else "provider"]
        _merge(groups, {key: Sums.from_document(total)})
    return groups


def _counted(field: str) -> dict[str, Any]:
    """1 for a record whose `field` is a number (what $avg would count), else 0."""
    return {"$cond": [{"$isNumber": f"${field}"}, 1, 0]}


async def _from_records(
    user_id: str, since: datetime | None, until: datetime | None, group_by: UsageGroupBy
) -> dict[str, Sums]:
    match: dict[str, Any] = equal(userId=user_id)
    created: dict[str, datetime] = {}
    if since is not None:
        created["$gte"] = since
    if until is not None:
        created["$lt"] = until
    if created:
        match["createdAt"] = created
    tokens = (
        "promptTokens",
        "completionTokens",
        "totalTokens",
        "reasoningTokens",
        "cachedPromptTokens",
        "cacheWriteTokens",
    )
    pipeline = [
        {"$match": match},
        {
            "$group": {
                "_id": _RECORD_KEYS[group_by],
                "requests": {"$sum": 1},
                **{name: {"$sum": f"${name}"} for name in tokens},
                "cost": {"$sum": "$cost"},
                "failedRequests": {"$sum": {"$cond": [{"$eq": ["$status", "failed"]}, 1, 0]}},
                # $sum and the counts skip nulls: requests that never produced a token
                # do not count in the time to first token.
                "latencyMsSum": {"$sum": "$latencyMs"},
                "latencyCount": {"$sum": _counted("latencyMs")},
                "timeToFirstTokenMsSum": {"$sum": "$timeToFirstTokenMs"},
                "timeToFirstTokenCount": {"$sum": _counted("timeToFirstTokenMs")},
            }
        },
    ]
    cursor = await UsageRecord.get_pymongo_collection().aggregate(pipeline)
    return {str(group["_id"]): Sums.from_document(group) async for group in cursor}


def _row(key: str, sums: Sums) -> UsageRow:
    return UsageRow(
        key=key,
        requests=sums.requests,
        prompt_tokens=sums.promptTokens,
        completion_tokens=sums.completionTokens,
        reasoning_tokens=sums.reasoningTokens,
        cached_prompt_tokens=sums.cachedPromptTokens,
        cache_write_tokens=sums.cacheWriteTokens,
        total_cost=float(sums.cost),
        failed_requests=sums.failedRequests,
        avg_latency_ms=_average(sums.latencyMsSum, sums.latencyCount),
        avg_time_to_first_token_ms=_average(sums.timeToFirstTokenMsSum, sums.timeToFirstTokenCount),
    )


def _average(total: float, count: int) -> float | None:
    return total / count if count else None
