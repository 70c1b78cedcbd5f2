"""Stopping `aipasta serve` is bounded: a request that would run for minutes (a hung
upstream, a client that stopped reading) does not keep the process alive."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from tests.faults.conftest import CHAT, MISTRAL_UPSTREAM, chat_input, free_port, provider_env
from tests.support.fake_upstream import FakeUpstream, hang
from tests.support.processes import until_healthy

AIPASTA = Path(sys.executable).parent / "aipasta"


async def test_sigterm_stops_the_server_within_the_shutdown_timeout_despite_a_hung_chat(
    tmp_path: Path, mongo_uri: str, clean_db: str, raw: FakeUpstream
) -> None:
    raw.script(MISTRAL_UPSTREAM, hang())
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIPASTA_")}
    env.update({key: str(value) for key, value in provider_env(raw).items()})
    env.update(
        {
            "MONGODB_URI": mongo_uri,
            "AIPASTA_DB_NAME": clean_db,
            "AIPASTA_DATA_DIR": str(tmp_path / "data"),
            "AIPASTA_LOG_LEVEL": "WARNING",
            # The chat would otherwise be waited for: minutes, not the bound below.
            "AIPASTA_CHAT_FIRST_TOKEN_TIMEOUT": "300",
            "AIPASTA_OPERATION_TIMEOUT": "300",
            "AIPASTA_SHUTDOWN_TIMEOUT": "1",
        }
    )
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(AIPASTA), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await until_healthy(http, base_url, server, log)
            chat = asyncio.create_task(
                http.post(f"{base_url}/graphql", json={"query": CHAT, "variables": chat_input()})
            )
            await raw.wait_for_chats(1)  # the chat is in flight upstream
            stopping = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.wait, 20)
            elapsed = time.monotonic() - stopping
            chat.cancel()
        # uvicorn ends by raising the signal it caught again, as a stopped process should.
        assert code in (0, -signal.SIGTERM), log.read_text()
        # The 1 s bound plus the lifespan's own shutdown, far from the 300 s chat.
        assert elapsed < 12, (elapsed, log.read_text())
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
