"""Waiting for an `aipasta serve` process that the test started itself."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp

START_TIMEOUT = 30.0


async def until_healthy(
    http: aiohttp.ClientSession,
    base_url: str,
    server: subprocess.Popen[bytes],
    log: Path,
    within: float = START_TIMEOUT,
) -> None:
    """Until `/health` answers 200; fails with the process's log if it exits or is late."""
    deadline = time.monotonic() + within
    while True:
        assert server.poll() is None, log.read_text()
        try:
            async with http.get(f"{base_url}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.1)  # polling a process that is starting
