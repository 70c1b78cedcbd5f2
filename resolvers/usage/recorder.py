"""Usage records, written to MongoDB in batches off the request path.

`record()` only appends to an in-memory buffer: no I/O, no await, O(1). A background
task writes the buffer with insert_many every `flush_interval` seconds, or as soon as
`batch_size` records are waiting, and `close()` writes what is left at shutdown.

While MongoDB is unavailable the records stay buffered, in order, and are written
once it is back. The buffer is bounded: beyond `max_buffer` records (those being
written included) the oldest waiting ones are dropped, counted in `dropped` and
logged: a warning when dropping starts, and the total once a write succeeds again.
With no database at all (`database=None`) nothing could ever be written, so every
record is dropped and counted at once.

Each record gets its ObjectId when it is recorded and keeps it across attempts, so a
batch retried after a write whose answer was lost (the connection dropped after the
server stored it) is not stored twice: the records already there come back as
duplicate-key errors, and count as written.

A flush shares the event loop: it builds, encodes and sums its batch `SLICE` records at
a time and lets the requests waiting run between two slices (the whole batch in one go
held the loop for 1.5 ms, which every request arriving meanwhile waited out). The batch
is taken from the buffer first, so what is recorded meanwhile waits for the next one,
in order; a flush that fails or is cancelled before its insert is confirmed puts its
batch back in front.

Each written batch is then added to the usage totals (documents.usage_totals) that the
usage report reads: one bulk `$inc` upsert, in the same background flush. A record is
counted in the totals exactly once:
- a batch goes back to the buffer only when its insert was not confirmed, so a record
  that comes back as a duplicate key was stored by a lost attempt and never counted;
- once the insert is confirmed, the batch's totals wait in their own queue, under an id
  of their own, until the totals update is confirmed: a retry after a lost answer finds
  its id in the totals and adds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo.errors import BulkWriteError

from documents.database import Database
from documents.errors import DatabaseUnavailable
from documents.money import decimal128
from documents.usage import UsageRecord, stored_usage
from providers.chat import TokenUsage
from resolvers.usage.totals import (
    SLICE,
    Sums,
    TotalsKey,
    add_live_totals,
    group_records,
    stored_cost,
)
from schema.types.enums import MessageStatus

log = logging.getLogger(__name__)

_DUPLICATE_KEY = 11000


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """One model request, as `documents.usage.UsageRecord` stores it."""

    user_id: str
    request_id: str
    model: str
    provider: str
    usage: TokenUsage
    cost: Decimal
    cost_known: bool
    latency_ms: float
    status: MessageStatus
    created_at: datetime
    # The client left before the end: stored as `cancelled` (the status is then PARTIAL).
    cancelled: bool = False
    time_to_first_token_ms: float | None = None
    error_code: str | None = None


_Buffered = tuple[ObjectId, UsageEntry]


def _document(id: ObjectId, entry: UsageEntry) -> dict[str, Any]:
    """`entry` as the `documents.usage.UsageRecord` MongoDB stores, as a plain dict.

    Built by hand rather than through the Beanie document: validating and encoding 200
    documents through Beanie held the event loop for ~12 ms a batch. The entry is typed
    already; what the model would refuse is refused here.
    """
    if not isinstance(entry.status, MessageStatus):
        raise TypeError(f"unknown usage status {entry.status!r}")
    if not entry.cost.is_finite():
        raise ValueError(f"usage cost must be finite, not {entry.cost}")
    return {
        "_id": id,
        "userId": entry.user_id,
        "requestId": entry.request_id,
        "model": entry.model,
        "provider": entry.provider,
        **stored_usage(entry.usage),
        "cost": decimal128(entry.cost),
        "costKnown": entry.cost_known,
        "latencyMs": entry.latency_ms,
        "timeToFirstTokenMs": entry.time_to_first_token_ms,
        # As stored from the start: lower case, and `cancelled` for a client gone.
        "status": "cancelled" if entry.cancelled else entry.status.value.lower(),
        "errorCode": entry.error_code,
        "createdAt": entry.created_at,
        "totalled": True,
    }


class UsageRecorder:
    def __init__(
        self,
        database: Database | None,
        *,
        flush_interval: float = 1.0,
        batch_size: int = 200,
        max_buffer: int = 50_000,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if not 1 <= batch_size <= max_buffer:
            raise ValueError("batch_size must be between 1 and max_buffer")
        self._database = database
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._max_buffer = max_buffer
        self._buffer: deque[_Buffered] = deque()
        # Written batches whose totals are not confirmed yet, oldest first.
        self._totals: deque[tuple[ObjectId, dict[TotalsKey, Sums]]] = deque()
        self._in_flight = 0
        self._dropped = 0
        self._dropped_unreported = 0
        self._rejected = 0
        self._written = 0
        self._failing = False
        # One flush at a time, so a record is never in two batches.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records not yet written: buffered, or in a write still in progress."""
        return len(self._buffer) + self._in_flight

    @property
    def dropped(self) -> int:
        """Records given up without being written (buffer full, or no database)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Records written to MongoDB (a retried batch's duplicates included once)."""
        return self._written

    @property
    def rejected(self) -> int:
        """Records refused as invalid, by the document model or by MongoDB (logged as
        errors); never retried."""
        return self._rejected

    def record(self, entry: UsageEntry) -> None:
        """Queue `entry` for writing. Never touches the database."""
        if self._database is None:
            if self._dropped == 0:
                log.warning("no database: usage records are not kept")
            self._dropped += 1
            return
        self._buffer.append((ObjectId(), entry))
        self._trim()
        if len(self._buffer) >= self._batch_size:
            self._wake.set()

    async def start(self) -> None:
        """Start the background writer (once; a no-op without a database)."""
        if self._task is None and self._database is not None:
            self._closing.clear()
            self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def flush(self, *, drain: bool = True) -> int:
        """Write what is buffered; with `drain` also the records added meanwhile.

        The background writer does not drain: records that arrive while a batch is
        being written wait for the next interval unless a whole batch is waiting. (At
        a modest rate, draining meant a write of a few records and a totals update
        after every previous write, back to back: 35 flushes a second instead of one,
        each a fixed cost to the database.)

        Returns how many records are now stored. When MongoDB is unavailable the batch
        goes back to the front of the buffer, in order, and the flush stops there.
        """
        database = self._database
        if database is None:
            return 0
        stored = 0
        async with self._lock:
            if not await self._add_totals(database):
                return stored
            due = len(self._buffer)
            while self._buffer and (drain or due > 0 or len(self._buffer) >= self._batch_size):
                due -= min(self._batch_size, len(self._buffer))
                batch = self._take()
                try:
                    written = await self._write(database, batch)
                    stored += written
                    self._written += written
                except DatabaseUnavailable:
                    self._put_back(batch)
                    self._failing = True
                    return stored
                except BaseException:
                    self._put_back(batch)
                    self._failing = True
                    raise
                self._in_flight = 0
                if not await self._add_totals(database):
                    return stored
            self._failing = False
            self._report_drops()
        return stored

    @property
    def totals_pending(self) -> int:
        """Written batches not yet added to the usage totals (the database went away
        between the two writes); retried with the next flush."""
        return len(self._totals)

    async def _add_totals(self, database: Database) -> bool:
        """Add the written batches to the totals, oldest first; False when the database
        is away (they stay queued, and are added once by a later flush)."""
        while self._totals:
            batch, groups = self._totals[0]
            try:
                await add_live_totals(database, batch, groups)
            except DatabaseUnavailable:
                self._failing = True
                return False
            except Exception:
                # Refused, not the database being away: retrying would hold up every
                # batch behind this one.
                log.exception("usage totals of %d records refused", _requests(groups))
            self._totals.popleft()
        return True

    async def close(self) -> None:
        """Stop the background writer and write what is left.

        Does not wait past the database's own timeouts: a write that fails marks the
        database down, after which every attempt fails at once. What cannot be written
        is logged as lost.
        """
        self._closing.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is not None:
                log.error("usage writer stopped: %r", task.exception())
        try:
            await self.flush()
        except Exception:
            log.exception("could not write usage records at shutdown")
        if self.pending:
            log.warning("%d usage records were not written before shutdown", self.pending)
        if self._totals:
            log.warning(
                "%d usage records were written but not added to the usage totals before "
                "shutdown: the usage report (which reads the totals) will not count them",
                sum(_requests(groups) for _, groups in self._totals),
            )

    async def _run(self) -> None:
        while not self._closing.is_set():
            await _wait(self._wake, self._flush_interval)
            self._wake.clear()
            try:
                await self.flush(drain=False)
            except Exception:
                log.exception("could not write usage records; they stay buffered")
            if self._failing:
                # Retry on the interval only: with the database away and the buffer
                # over a batch, every new record would wake us for nothing.
                await _wait(self._closing, self._flush_interval)

    async def _write(self, database: Database, batch: list[_Buffered]) -> int:
        collection = UsageRecord.get_pymongo_collection()
        options = collection.codec_options
        documents: list[dict[str, Any]] = []
        encoded: list[RawBSONDocument] = []
        costs: list[Decimal] = []
        groups: dict[TotalsKey, Sums] = {}
        for start in range(0, len(batch), SLICE):
            built, built_costs = self._documents(batch[start : start + SLICE])
            group_records(built, built_costs, into=groups)
            # Encoded here, a slice at a time, as insert_many would encode them all at
            # once; it sends encoded documents as they are.
            encoded += [RawBSONDocument(bson.encode(d, codec_options=options)) for d in built]
            documents += built
            costs += built_costs
            # The requests waiting on the loop run between two slices, and before the
            # insert encodes the batch; the batch is taken already, so what they record
            # waits for the next one.
            await asyncio.sleep(0)
        if not documents:
            return 0
        try:
            async with database.guard():
                # Unordered: one refused record does not stop the rest of the batch.
                await collection.insert_many(encoded, ordered=False)
        except BulkWriteError as exc:
            errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
            refused = [e for e in errors if e.get("code") != _DUPLICATE_KEY]
            if refused:
                self._reject(len(refused), refused[0].get("errmsg"))
                out = {e.get("index") for e in refused}
                kept = [i for i in range(len(documents)) if i not in out]
                documents = [documents[i] for i in kept]
                groups = group_records(documents, [costs[i] for i in kept])
        # Duplicates included: a lost attempt stored them, and no attempt counted them.
        # No await between the confirmed insert and queueing its totals.
        self._totals.append((ObjectId(), groups))
        return len(documents)

    def _documents(self, batch: list[_Buffered]) -> tuple[list[dict[str, Any]], list[Decimal]]:
        """The entries' documents, and their costs as stored."""
        # An invalid entry is a bug in its caller; retrying it would block every
        # record behind it, so it is refused on its own.
        documents = []
        costs = []
        for id, entry in batch:
            try:
                documents.append(_document(id, entry))
            except (TypeError, ValueError, ArithmeticError) as exc:
                self._reject(1, exc)
            else:
                costs.append(stored_cost(entry.cost))
        return documents, costs

    def _reject(self, count: int, why: object) -> None:
        self._rejected += count
        log.error("%d usage records refused (%s)", count, why)

    def _take(self) -> list[_Buffered]:
        batch = [self._buffer.popleft() for _ in range(min(self._batch_size, len(self._buffer)))]
        self._in_flight = len(batch)
        return batch

    def _put_back(self, batch: list[_Buffered]) -> None:
        self._in_flight = 0
        self._buffer.extendleft(reversed(batch))
        self._trim()

    def _trim(self) -> None:
        excess = min(self.pending - self._max_buffer, len(self._buffer))
        if excess <= 0:
            return
        for _ in range(excess):
            self._buffer.popleft()
        if self._dropped_unreported == 0:
            log.warning(
                "usage buffer full (%d records): dropping the oldest until MongoDB takes them",
                self._max_buffer,
            )
        self._dropped += excess
        self._dropped_unreported += excess

    def _report_drops(self) -> None:
        if self._dropped_unreported:
            log.warning(
                "%d usage records were dropped while MongoDB was unavailable",
                self._dropped_unreported,
            )
            self._dropped_unreported = 0


def _requests(groups: dict[TotalsKey, Sums]) -> int:
    return sum(sums.requests for sums in groups.values())


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
