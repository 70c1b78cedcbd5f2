"""Usage totals (documents.usage_totals): what a flush adds, and the start-up backfill.

`Sums` is one group's figures, the same whether they come from records, from totals or
from both: the report (resolvers.usage.report) adds them up, and the recorder turns a
flushed batch into `Sums` per (user, day, model, provider) and adds them with
`add_live_totals`, one bulk `$inc` upsert guarded by the flush's id.

`TotalsBackfill` counts, once, the records stored before the totals existed: at
start-up, in the background, by whichever process claims the state document first (a
lease it renews; a process that died mid-way leaves a lease that runs out, and the next
start takes over). The backfill's totals are set, never incremented, so a run cut short
and run again, or run by two processes at once, writes the same values. Until it is
done the report reads the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Any, Literal

import pymongo
from bson import Decimal128, ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.filters import equal
from documents.money import decimal128
from documents.usage import UsageRecord
from documents.usage_totals import (
    BACKFILL,
    BACKFILL_STATE_ID,
    LIVE,
    REMEMBERED_BATCHES,
    UsageTotal,
    UsageTotalsState,
)

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000
# The backfill's one pass over the records may take this long (SecantusDB reads about
# 20,000 records a second) before it fails and starts again.
SCAN_SECONDS = 3600.0
_RENEW_SECONDS = 5.0
# MongoDB sums Decimal128 with 34 significant digits; so does every sum made here.
_DECIMAL128 = Context(prec=34)

# Items of a flush's work done between two turns of the event loop: records built and
# summed, or totals updates built (~0.1 ms of work; a batch of 200 records in one go
# held the loop for over a millisecond).
SLICE = 50

TotalsKey = tuple[str, datetime, str, str]
"""(userId, day at midnight UTC, model, provider)."""


@dataclass(slots=True)
class Sums:
    """One group of usage records, summed. Averages are sum / count at the end."""

    requests: int = 0
    failedRequests: int = 0
    promptTokens: int = 0
    completionTokens: int = 0
    totalTokens: int = 0
    reasoningTokens: int = 0
    cachedPromptTokens: int = 0
    cacheWriteTokens: int = 0
    cost: Decimal = Decimal(0)
    latencyMsSum: float = 0.0
    latencyCount: int = 0
    timeToFirstTokenMsSum: float = 0.0
    timeToFirstTokenCount: int = 0

    def add(self, other: Sums) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost = _DECIMAL128.add(self.cost, other.cost)

    def add_record(self, record: Mapping[str, Any], cost: Decimal | None = None) -> None:
        """One stored usage record (as `resolvers.usage.recorder` writes it; counts an
        older version left out are 0). `cost`: the record's cost, when known already
        as a Decimal (reading Decimal128 back costs more than the rest together)."""
        get = record.get
        self.requests += 1
        if get("status") == "failed":
            self.failedRequests += 1
        self.promptTokens += _count(get("promptTokens"))
        self.completionTokens += _count(get("completionTokens"))
        self.totalTokens += _count(get("totalTokens"))
        self.reasoningTokens += _count(get("reasoningTokens"))
        self.cachedPromptTokens += _count(get("cachedPromptTokens"))
        self.cacheWriteTokens += _count(get("cacheWriteTokens"))
        self.cost = _DECIMAL128.add(self.cost, as_decimal(get("cost")) if cost is None else cost)
        latency = _number(get("latencyMs"))
        if latency is not None:
            self.latencyMsSum += latency
            self.latencyCount += 1
        ttft = _number(get("timeToFirstTokenMs"))
        if ttft is not None:
            self.timeToFirstTokenMsSum += ttft
            self.timeToFirstTokenCount += 1

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Sums:
        """A `UsageTotal` document, or a report group with the same field names."""
        sums = cls(cost=as_decimal(document.get("cost")))
        for name in _COUNTS:
            setattr(sums, name, document.get(name) or 0)
        return sums

    def as_fields(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in _COUNTS}, "cost": decimal128(self.cost)}


SUM_FIELDS = tuple(f.name for f in fields(Sums))
_COUNTS = tuple(name for name in SUM_FIELDS if name != "cost")
_TOKENS = (
    "promptTokens",
    "completionTokens",
    "totalTokens",
    "reasoningTokens",
    "cachedPromptTokens",
    "cacheWriteTokens",
)


_RECORD_FIELDS = {
    name: 1
    for name in (
        "userId",
        "model",
        "provider",
        "createdAt",
        "status",
        *_TOKENS,
        "cost",
        "latencyMs",
        "timeToFirstTokenMs",
    )
}


def _count(value: object) -> int:
    """A token count as $sum takes it: a missing field or null adds nothing."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def stored_cost(amount: Decimal) -> Decimal:
    """`amount` as a usage record stores it (Decimal128: 34 significant digits)."""
    return _DECIMAL128.create_decimal(amount)


def _number(value: object) -> float | None:
    """A number as MongoDB's $sum and $avg take one (a missing field or null is none)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def as_decimal(value: object) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value))


def utc_day(moment: datetime) -> datetime:
    """Midnight UTC of `moment`'s UTC day (a naive `moment` is UTC already, as MongoDB
    takes it)."""
    if moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, tzinfo=UTC)


def group_records(
    records: Iterable[Mapping[str, Any]],
    costs: Iterable[Decimal] | None = None,
    *,
    into: dict[TotalsKey, Sums] | None = None,
) -> dict[TotalsKey, Sums]:
    """Stored usage records summed per (user, UTC day, model, provider); `costs`, when
    given, are their costs as Decimals, in the same order. `into`: groups to add them
    to (and return) rather than new ones."""
    groups: dict[TotalsKey, Sums] = {} if into is None else into
    cost_of = iter(costs) if costs is not None else None
    for record in records:
        key = (record["userId"], utc_day(record["createdAt"]), record["model"], record["provider"])
        sums = groups.get(key)
        if sums is None:
            sums = groups[key] = Sums()
        sums.add_record(record, None if cost_of is None else next(cost_of))
    return groups


def _key_filter(key: TotalsKey, source: str) -> dict[str, Any]:
    user_id, day, model, provider = key
    return equal(userId=user_id, day=day, model=model, provider=provider, source=source)


async def add_live_totals(
    database: Database, batch: ObjectId, groups: dict[TotalsKey, Sums]
) -> None:
    """Add one flush's `groups` to the live totals, once: a retry with the same `batch`
    id after a lost answer adds nothing more. Raises DatabaseUnavailable to be retried.
    The updates are built `SLICE` at a time, the loop's other tasks running between."""
    if not groups:
        return
    collection = UsageTotal.get_pymongo_collection()

    def update(key: TotalsKey, sums: Sums, *, upsert: bool) -> UpdateOne:
        # A total that lists `batch` already has it: the filter then matches nothing.
        return UpdateOne(
            {**_key_filter(key, LIVE), "batches": {"$ne": batch}},
            {
                "$inc": sums.as_fields(),
                "$push": {"batches": {"$each": [batch], "$slice": -REMEMBERED_BATCHES}},
            },
            upsert=upsert,
        )

    items = list(groups.items())
    updates: list[UpdateOne] = []
    for start in range(0, len(items), SLICE):
        updates += [update(k, s, upsert=True) for k, s in items[start : start + SLICE]]
        # The requests waiting on the loop run between two slices, and before the
        # bulk write encodes them.
        await asyncio.sleep(0)
    async with database.guard():
        try:
            await collection.bulk_write(updates, ordered=False)
        except BulkWriteError as exc:
            errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
        else:
            return
        refused = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
        if refused:
            # Not the database being away: retrying would not help.
            log.error("usage totals refused (%s)", refused[0].get("errmsg"))
        # A duplicate key means the total exists: either it has this batch already, or
        # another process created it in the same instant. Without the upsert, the first
        # case matches nothing and the second adds the batch.
        again = [items[e["index"]] for e in errors if e.get("code") == _DUPLICATE_KEY]
        if again:
            # A refusal here raises: the recorder logs it and goes on.
            await collection.bulk_write(
                [update(k, s, upsert=False) for k, s in again], ordered=False
            )


# The databases on which the backfill is known to be done: it never goes back.
_DONE: weakref.WeakSet[Database] = weakref.WeakSet()


async def totals_ready(database: Database) -> bool:
    """True once the backfill is done, so that the totals hold every record. Call it
    inside `database.guard()`."""
    if database in _DONE:
        return True
    state = await UsageTotalsState.get_pymongo_collection().find_one(
        equal(name=BACKFILL_STATE_ID, state="done"), {"_id": 1}
    )
    if state is None:
        return False
    _DONE.add(database)
    return True


class _LeaseLost(Exception):
    """Another process took the backfill over (this one was slower than its lease)."""


Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class TotalsBackfill:
    """Counts the records stored before the totals existed, once, in the background."""

    def __init__(
        self,
        database: Database | None,
        *,
        page_size: int = 1000,
        lease_seconds: float = 30.0,
        retry_seconds: float = 2.0,
        clock: Clock = _now,
    ) -> None:
        if page_size < 1 or lease_seconds <= 0 or retry_seconds <= 0:
            raise ValueError("page_size, lease_seconds and retry_seconds must be positive")
        self._database = database
        self._page_size = page_size
        self._lease = timedelta(seconds=lease_seconds)
        self._retry_seconds = retry_seconds
        self._clock = clock
        self._owner = str(ObjectId())
        self._task: asyncio.Task[None] | None = None
        self.scanned = 0
        """Records this process read for the backfill (0 when another one did it)."""
        self.done = asyncio.Event()
        """Set when the backfill is done, by this process or another."""

    async def start(self) -> None:
        if self._task is None and self._database is not None:
            self._task = asyncio.create_task(self._run(self._database), name="usage-backfill")

    async def close(self) -> None:
        """Stop at once: the claim's lease runs out and the next start goes on."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # Cancelling interrupts a database call at once; do not wait on a stuck one.
        await asyncio.wait([task], timeout=1.0)
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("usage backfill stopped: %r", task.exception())

    async def _run(self, database: Database) -> None:
        while True:
            try:
                if database.available or await database.wait_connected(self._retry_seconds):
                    async with database.guard():
                        claim = await self._claim()
                    if claim == "done":
                        self.done.set()
                        return
                    if claim == "mine":
                        await self._backfill(database)
                        self.done.set()
                        return
            except (DatabaseUnavailable, _LeaseLost) as exc:
                log.info("usage totals backfill waits (%s)", exc)
            except Exception:
                log.exception("usage totals backfill failed; trying again")
            # Another process is on it, or the database is away: look again later.
            await asyncio.sleep(self._retry_seconds)

    async def _claim(self) -> Literal["done", "mine", "busy"]:
        collection = UsageTotalsState.get_pymongo_collection()
        now = self._clock()
        with contextlib.suppress(DuplicateKeyError):
            await collection.insert_one(
                {
                    "name": BACKFILL_STATE_ID,
                    "state": "running",
                    "owner": self._owner,
                    "leaseUntil": now + self._lease,
                    "finishedAt": None,
                }
            )
            return "mine"
        taken = await collection.find_one_and_update(
            {**equal(name=BACKFILL_STATE_ID, state="running"), "leaseUntil": {"$lt": now}},
            {"$set": {"owner": self._owner, "leaseUntil": now + self._lease}},
        )
        if taken is not None:
            log.warning("usage totals backfill: taking over from a process that stopped")
            return "mine"
        state = await collection.find_one(equal(name=BACKFILL_STATE_ID))
        return "done" if state is not None and state.get("state") == "done" else "busy"

    async def _renew(self, database: Database) -> None:
        # Inside the scan's long deadline: as short as any other operation.
        with pymongo.timeout(_RENEW_SECONDS):
            async with database.guard():
                renewed = await UsageTotalsState.get_pymongo_collection().update_one(
                    equal(name=BACKFILL_STATE_ID, state="running", owner=self._owner),
                    {"$set": {"leaseUntil": self._clock() + self._lease}},
                )
        if renewed.matched_count == 0:
            raise _LeaseLost("another process took the backfill over")

    async def _backfill(self, database: Database) -> None:
        log.info("usage totals: counting the usage records stored before them")
        groups: dict[TotalsKey, Sums] = {}
        self.scanned = 0
        renew_at = self._clock() + self._lease / 3
        # One pass over the collection in its natural order: on SecantusDB a range on
        # `_id` sorted by it is a full scan each time, so pages keyed on `_id` would
        # cost a scan each. The pass may outlast the operation timeout, not SCAN_SECONDS.
        with pymongo.timeout(SCAN_SECONDS):
            async with database.guard():
                cursor = UsageRecord.get_pymongo_collection().find(
                    {"totalled": {"$ne": True}}, _RECORD_FIELDS, batch_size=self._page_size
                )
                async for record in cursor:
                    key = (
                        record["userId"],
                        utc_day(record["createdAt"]),
                        record["model"],
                        record["provider"],
                    )
                    sums = groups.get(key)
                    if sums is None:
                        sums = groups[key] = Sums()
                    sums.add_record(record)
                    self.scanned += 1
                    if self.scanned % self._page_size == 0:
                        await self._page_done()
                        if self._clock() >= renew_at:
                            await self._renew(database)
                            renew_at = self._clock() + self._lease / 3
        await self._write(database, groups)
        async with database.guard():
            # Whoever marks it done had every backfill total written first.
            await UsageTotalsState.get_pymongo_collection().update_one(
                equal(name=BACKFILL_STATE_ID),
                {"$set": {"state": "done", "finishedAt": self._clock()}},
            )
        log.info("usage totals: %d earlier records counted in %d totals", self.scanned, len(groups))

    async def _page_done(self) -> None:
        """Called after each page of records: lets the requests waiting run (and is a
        seam for tests)."""
        await asyncio.sleep(0)

    async def _write(self, database: Database, groups: dict[TotalsKey, Sums]) -> None:
        items = list(groups.items())
        collection = UsageTotal.get_pymongo_collection()
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            async with database.guard():
                try:
                    await collection.bulk_write(
                        [_set_backfill(key, sums, upsert=True) for key, sums in chunk],
                        ordered=False,
                    )
                    continue
                except BulkWriteError as exc:
                    errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
                # Another process created the same total in the same instant: set it.
                again = [chunk[e["index"]] for e in errors if e.get("code") == _DUPLICATE_KEY]
                if len(again) < len(errors):
                    raise RuntimeError(f"usage backfill totals refused: {errors[0].get('errmsg')}")
                await collection.bulk_write(
                    [_set_backfill(key, sums, upsert=False) for key, sums in again],
                    ordered=False,
                )


def _set_backfill(key: TotalsKey, sums: Sums, *, upsert: bool) -> UpdateOne:
    return UpdateOne(_key_filter(key, BACKFILL), {"$set": sums.as_fields()}, upsert=upsert)
