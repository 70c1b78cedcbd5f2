"""MongoDB coming back after a start without it: no restart needed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

from tests.support.fake_upstream import FakeUpstream
from tests.support.server import StartApp


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_database_that_appears_later_is_picked_up(
    start_app: StartApp, catalog_upstream: FakeUpstream
) -> None:
    port = free_port()
    app = await start_app(
        MONGODB_URI=f"mongodb://127.0.0.1:{port}/?directConnection=true",
        AIPASTA_DB_TIMEOUT_MS=200,
        AIPASTA_DB_RETRY_SECONDS=0.1,
    )
    _, before = await app.get("/health")
    assert before["services"]["database"] == "disconnected"

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "secantus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:",
            "--log-level",
            "ERROR",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        status = before
        while time.monotonic() < deadline:
            _, status = await app.get("/health")
            if status["services"]["database"] == "connected":
                break
            await asyncio.sleep(0.1)  # polling a process that is starting, not timing
        assert status["services"]["database"] == "connected"
        assert status["status"] == "ok"
    finally:
        server.terminate()
        server.wait(timeout=15)
