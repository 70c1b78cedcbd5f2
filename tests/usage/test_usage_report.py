"""The `usage` query through the real schema, as "alice", "bob" or nobody."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from starlette.requests import Request

from documents.database import Database
from documents.registry import document_models
from providers.chat import TokenUsage
from resolvers.context import Context, Services
from resolvers.identity.identity import Identity
from resolvers.usage.recorder import UsageEntry, UsageRecorder
from schema.build import build_schema
from schema.types.enums import MessageStatus
from tests.conftest import make_settings
from tests.support.errors import without_request_id

SCHEMA = build_schema()
USAGE = """
query Usage($since: DateTime, $until: DateTime, $groupBy: UsageGroupBy) {
  usage(since: $since, until: $until, groupBy: $groupBy) {
    rows {
      key requests promptTokens completionTokens totalCost failedRequests
      avgLatencyMs avgTimeToFirstTokenMs
    }
    totalRequests totalCost
  }
}
"""
DEEPSEEK = "openrouter:deepseek/deepseek-chat"
SONNET = "openrouter:anthropic/claude-3.5-sonnet"
LLAMA = "huggingface:meta-llama/Llama-3.1-8B-Instruct"
PLUS_TWO = timezone(timedelta(hours=2))


def entry(
    user: str,
    model: str,
    at: datetime,
    tokens: tuple[int, int],
    cost: str,
    latency: float,
    ttft: float | None,
    status: str = "complete",
) -> UsageEntry:
    """`status` as stored: complete, partial, failed or cancelled."""
    cancelled = status == "cancelled"
    return UsageEntry(
        user_id=user,
        request_id=f"{user}-{at.isoformat()}",
        model=model,
        provider=model.partition(":")[0],
        usage=TokenUsage(tokens[0], tokens[1], sum(tokens)),
        cost=Decimal(cost),
        cost_known=cost != "0",
        latency_ms=latency,
        time_to_first_token_ms=ttft,
        status=MessageStatus.PARTIAL if cancelled else MessageStatus(status.upper()),
        cancelled=cancelled,
        error_code="PROVIDER_ERROR" if status == "failed" else None,
        created_at=at,
    )


def march(day: int, hour: int, minute: int = 0, tz: timezone = UTC) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=tz)


RECORDS = [
    entry("alice", DEEPSEEK, march(1, 10), (1000, 500), "0.1", 100, 40),
    # 01:30 at UTC+2 is still 1 March in UTC, the day the report uses.
    entry("alice", DEEPSEEK, march(2, 1, 30, PLUS_TWO), (2000, 100), "0.2", 300, 60),
    entry("alice", LLAMA, march(2, 0, 30), (300, 0), "0", 50, None, "failed"),
    entry("alice", SONNET, march(2, 12), (100, 50), "0.5", 1000, 200, "partial"),
    entry("alice", DEEPSEEK, march(3, 8), (10, 10), "0.0000003", 200, None, "cancelled"),
    entry("bob", DEEPSEEK, march(1, 12), (999, 999), "9", 70, None, "failed"),
    entry("bob", LLAMA, march(2, 9), (5, 5), "1", 30, 10),
]


def row(
    key: str,
    requests: int,
    tokens: tuple[int, int],
    cost: float,
    failed: int,
    latency: float | None,
    ttft: float | None,
) -> dict[str, Any]:
    return {
        "key": key,
        "requests": requests,
        "promptTokens": tokens[0],
        "completionTokens": tokens[1],
        "totalCost": cost,
        "failedRequests": failed,
        "avgLatencyMs": latency,
        "avgTimeToFirstTokenMs": ttft,
    }


def services(tmp_path: Path, database: Database | None) -> Services:
    """Real Services for `usage`, which needs only the database; the rest stays None."""
    required: dict[str, Any] = {
        f.name: None
        for f in dataclasses.fields(Services)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    return Services(
        **{**required, "settings": make_settings(tmp_path), "database": database, "version": "t"}
    )


class UsageClient:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(self, user: str | None, **variables: Any) -> Any:
        request = Request({"type": "http", "method": "POST", "headers": [], "client": ("::1", 1)})
        context = Context(
            services=self.services,
            request=request,
            response=None,
            request_id="req-usage",
            identity=None if user is None else Identity(user),
        )
        return await SCHEMA.execute(USAGE, variable_values=variables, context_value=context)

    async def report(self, user: str = "alice", **variables: Any) -> dict[str, Any]:
        result = await self.run(user, **variables)
        assert not result.errors, result.errors
        report: dict[str, Any] = result.data["usage"]
        return report

    async def error(self, user: str | None = "alice", **variables: Any) -> dict[str, Any]:
        result = await self.run(user, **variables)
        assert result.data is None
        (error,) = result.errors
        return without_request_id(error.extensions, "req-usage")


@pytest_asyncio.fixture
async def client(tmp_path: Path, database: Database) -> AsyncIterator[UsageClient]:
    recorder = UsageRecorder(database)
    for record in RECORDS:
        recorder.record(record)
    assert await recorder.flush() == len(RECORDS)
    yield UsageClient(services(tmp_path, database))


async def test_by_model_biggest_spender_first(client: UsageClient) -> None:
    report = await client.report(groupBy="MODEL")
    assert report["rows"] == [
        row(SONNET, 1, (100, 50), 0.5, 0, 1000.0, 200.0),
        # 0.1 + 0.2 + 0.0000003 summed as floats would be 0.30000030000000005.
        row(DEEPSEEK, 3, (3010, 610), 0.3000003, 0, 200.0, 50.0),
        row(LLAMA, 1, (300, 0), 0.0, 1, 50.0, None),
    ]
    assert (report["totalRequests"], report["totalCost"]) == (5, 0.8000003)


async def test_by_model_is_the_default(client: UsageClient) -> None:
    by_model = await client.report(groupBy="MODEL")
    assert await client.report() == by_model
    assert await client.report(groupBy=None) == by_model


async def test_by_provider(client: UsageClient) -> None:
    report = await client.report(groupBy="PROVIDER")
    assert report["rows"] == [
        row("openrouter", 4, (3110, 660), 0.8000003, 0, 400.0, 100.0),
        row("huggingface", 1, (300, 0), 0.0, 1, 50.0, None),
    ]


async def test_by_utc_day_in_date_order(client: UsageClient) -> None:
    report = await client.report(groupBy="DAY")
    assert report["rows"] == [
        row("2025-03-01", 2, (3000, 600), 0.3, 0, 200.0, 50.0),
        row("2025-03-02", 2, (400, 50), 0.5, 1, 525.0, 200.0),
        row("2025-03-03", 1, (10, 10), 0.0000003, 0, 200.0, None),
    ]
    assert (report["totalRequests"], report["totalCost"]) == (5, 0.8000003)


async def test_each_user_sees_only_their_own_usage(client: UsageClient) -> None:
    bob = await client.report("bob")
    assert bob["rows"] == [
        row(DEEPSEEK, 1, (999, 999), 9.0, 1, 70.0, None),
        row(LLAMA, 1, (5, 5), 1.0, 0, 30.0, 10.0),
    ]
    assert (bob["totalRequests"], bob["totalCost"]) == (2, 10.0)
    assert await client.report("carol") == {"rows": [], "totalRequests": 0, "totalCost": 0.0}


async def test_since_is_inclusive_and_until_exclusive(client: UsageClient) -> None:
    one_day = await client.report(
        groupBy="DAY", since="2025-03-02T00:00:00Z", until="2025-03-03T00:00:00Z"
    )
    assert [r["key"] for r in one_day["rows"]] == ["2025-03-02"]
    assert one_day["totalRequests"] == 2

    # The failed request is at exactly 00:30.
    before = await client.report(since="2025-03-02T00:00:00Z", until="2025-03-02T00:30:00Z")
    assert before == {"rows": [], "totalRequests": 0, "totalCost": 0.0}
    at = await client.report(since="2025-03-02T00:30:00Z", until="2025-03-02T00:30:00.001Z")
    assert [r["key"] for r in at["rows"]] == [LLAMA]

    from_the_3rd = await client.report(since="2025-03-03T00:00:00Z")
    assert from_the_3rd["totalRequests"] == 1
    until_the_2nd = await client.report(until="2025-03-02T00:00:00Z")
    assert until_the_2nd["totalRequests"] == 2


async def test_times_without_an_offset_are_utc(client: UsageClient) -> None:
    naive = await client.report(since="2025-03-02T00:00:00", until="2025-03-03T00:00:00")
    aware = await client.report(since="2025-03-02T02:00:00+02:00", until="2025-03-03T00:00:00Z")
    assert naive == aware
    assert naive["totalRequests"] == 2


async def test_since_after_until_is_refused(client: UsageClient) -> None:
    error = await client.error(since="2025-03-03T00:00:00Z", until="2025-03-02T00:00:00Z")
    assert error == {"code": "BAD_USER_INPUT", "details": {"field": "since"}}


async def test_signing_in_is_required(client: UsageClient) -> None:
    assert (await client.error(None))["code"] == "UNAUTHENTICATED"


async def test_without_a_database_the_report_is_unavailable(tmp_path: Path) -> None:
    client = UsageClient(services(tmp_path, None))
    assert (await client.error())["code"] == "DATABASE_UNAVAILABLE"


async def test_with_the_database_down_the_report_is_unavailable(tmp_path: Path) -> None:
    never_connected = Database(
        "mongodb://127.0.0.1:9/?directConnection=true",
        db_name="nowhere",
        document_models=document_models(),
    )
    try:
        client = UsageClient(services(tmp_path, never_connected))
        assert (await client.error())["code"] == "DATABASE_UNAVAILABLE"
    finally:
        await never_connected.close()


@pytest.mark.parametrize("group_by", ["MODEL", "PROVIDER", "DAY"])
async def test_every_grouping_covers_every_request(client: UsageClient, group_by: str) -> None:
    report = await client.report(groupBy=group_by)
    assert sum(r["requests"] for r in report["rows"]) == report["totalRequests"] == 5
    assert sum(r["failedRequests"] for r in report["rows"]) == 1
