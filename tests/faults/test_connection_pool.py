"""The gateway's pool of upstream connections: big enough for a gateway's load on one
provider, and a request that finds it full is told so, not that the upstream is slow."""

from __future__ import annotations

import asyncio
import logging
import resource
from pathlib import Path

import aiohttp
import pytest

from aipasta.upstreams import http_session
from tests.conftest import make_settings
from tests.faults.conftest import CHAT, MISTRAL_UPSTREAM, FaultAppFactory, chat_input
from tests.faults.test_upstream_faults import assert_no_internals, usage_records
from tests.support.fake_upstream import FakeUpstream, Finish, Text, Wait, steps
from tests.support.server import RunningApp

CONCURRENT = 150  # above aiohttp's default of 100 connections per host


async def test_chat_that_finds_every_upstream_connection_busy_is_told_the_pool_is_full(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    gate = asyncio.Event()
    raw.script(MISTRAL_UPSTREAM, steps(Text("Hel"), Wait(gate), Text("lo"), Finish()))
    app = await fault_app(AIPASTA_UPSTREAM_POOL_SIZE=1, AIPASTA_CHAT_CONNECT_TIMEOUT=0.3)
    holding = asyncio.create_task(app.graphql(CHAT, chat_input()))
    await raw.wait_for_chats(1)

    error = await app.error(CHAT, chat_input())

    assert error["extensions"]["code"] == "PROVIDER_TIMEOUT"
    assert error["message"].startswith("openrouter: no connection to the upstream came free")
    assert error["message"].endswith("the gateway's connection pool is full")
    assert "could not connect" not in error["message"]
    assert_no_internals(error)
    assert len(raw.chats) == 1  # never sent upstream, and not retried

    gate.set()
    answered = await holding
    assert answered["data"]["chat"]["message"]["content"] == "Hello"
    records = await usage_records(app)
    assert sorted((r["status"], r["errorCode"] or "") for r in records) == [
        ("complete", ""),
        ("failed", "PROVIDER_TIMEOUT"),
    ]


async def test_more_chats_than_aiohttps_default_pool_reach_one_provider_at_once(
    raw: FakeUpstream, fault_app: FaultAppFactory
) -> None:
    gate = asyncio.Event()
    raw.default(MISTRAL_UPSTREAM, steps(Text("Hel"), Wait(gate), Text("lo"), Finish()))
    app = await fault_app()  # the default pool size
    await app.catalog_settled()  # its start-up fetch holds no connection any more

    # The test's own client must not be the bottleneck: no limit on its side.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        client = RunningApp(app.base_url, http)
        chats = [asyncio.create_task(client.graphql(CHAT, chat_input())) for _ in range(CONCURRENT)]
        # Every one of them is talking to the upstream at the same moment.
        await raw.wait_for_chats(CONCURRENT, within=30)
        assert app.upstream_connections()[0] == CONCURRENT
        gate.set()
        bodies = await asyncio.gather(*chats)

    assert [b.get("errors") for b in bodies] == [None] * CONCURRENT
    assert {b["data"]["chat"]["message"]["content"] for b in bodies} == {"Hello"}


@pytest.mark.parametrize(("open_files", "warned"), [(1024, True), (65536, False)])
async def test_a_pool_larger_than_the_open_file_limit_is_warned_about_at_start(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    open_files: int,
    warned: bool,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _: (open_files, 1048576))
    with caplog.at_level(logging.WARNING, logger="aipasta.upstreams"):
        async with http_session(make_settings(tmp_path)) as session:
            assert session.connector is not None and session.connector.limit == 2000

    warning = "AIPASTA_UPSTREAM_POOL_SIZE=2000 needs about 4000 open files"
    assert (warning in caplog.text) is warned
    if warned:
        assert "this process may open 1024 (ulimit -n)" in caplog.text
