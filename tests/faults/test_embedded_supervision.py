"""The embedded database under a running server: killed, it is started again with its
data; unusable at start, it is retried with back-off. The gateway is never restarted.

These tests run the gateway without MONGODB_URI, so it starts its own SecantusDB in the
test's data folder, and SIGKILL that process as a crash would.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from aipasta.database import close_served_database, serve_database
from aipasta.embedded import EmbeddedError, EmbeddedMongo
from aipasta.supervisor import EmbeddedSupervisor
from documents.errors import DatabaseUnavailable
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.faults.conftest import HISTORY, SAVE, FaultApp, launch, provider_env
from tests.signin.test_keys_cli import run as run_cli
from tests.streaming.conftest import wait_until
from tests.support.fake_upstream import FakeUpstream

WRITERS = 6

SUPERVISED: dict[str, Any] = {
    "AIPASTA_DB_TIMEOUT_MS": 300,
    "AIPASTA_DB_OPERATION_TIMEOUT_MS": 2000,
    "AIPASTA_DB_RETRY_SECONDS": 0.05,
    "AIPASTA_EMBEDDED_CHECK_SECONDS": 0.05,
    "AIPASTA_EMBEDDED_RESTART_BACKOFF": 0.05,
    "AIPASTA_EMBEDDED_RESTART_MAX_BACKOFF": 0.2,
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"  # what make_settings points AIPASTA_DATA_DIR at
    yield path
    EmbeddedMongo(path).stop()  # whatever a failing test left behind


def running_pid(data_dir: Path) -> int:
    return int(json.loads((data_dir / "embedded.json").read_text())["pid"])


async def kill_database(data_dir: Path, *, until_files_released: bool = False) -> int:
    """SIGKILL the running database and return once it has died (that takes a moment)."""
    pid = running_pid(data_dir)
    os.kill(pid, signal.SIGKILL)
    if until_files_released:
        # Its last threads let go of the files after its main thread has exited.
        await until(lambda: files_released(data_dir))
    else:
        await until(lambda: pid not in secantus_processes(data_dir))
    return pid


def files_released(data_dir: Path) -> bool:
    with open(data_dir / "embedded.files.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle, fcntl.LOCK_UN)
        return True


async def until(condition: Callable[[], bool]) -> None:
    async def probe() -> bool:
        return condition()

    await wait_until(probe, within=60)


async def health(app: FaultApp) -> dict[str, Any]:
    status, body = await app.get("/health")
    assert status == 200
    return body  # type: ignore[no-any-return]


async def until_healthy(app: FaultApp) -> dict[str, Any]:
    async def healthy() -> dict[str, Any] | None:
        body = await health(app)
        return body if body["services"]["database"] == "connected" else None

    return await wait_until(healthy, within=60, every=0.05)


async def save(app: FaultApp, session: str, content: str) -> bool:
    """True when the gateway acknowledged the message."""
    body = await app.graphql(
        SAVE, {"input": {"sessionId": session, "content": content, "isUser": True}}
    )
    if "errors" in body:
        assert body["errors"][0]["extensions"]["code"] == "DATABASE_UNAVAILABLE", body
        return False
    return True


async def stored(app: FaultApp, session: str) -> list[str]:
    body = await app.graphql(HISTORY, {"sessionId": session})
    assert "errors" not in body, body
    return [node["content"] for node in body["data"]["chatHistory"]["nodes"]]


async def test_killed_during_writes_it_is_restarted_and_every_acknowledged_write_is_kept(
    tmp_path: Path, data_dir: Path, raw: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aipasta")
    async with launch(tmp_path, **provider_env(raw), **SUPERVISED) as app:
        body = await until_healthy(app)
        assert body["embeddedDatabase"] == {"state": "running", "restarts": 0, "failedAttempts": 0}
        first_pid = running_pid(data_dir)
        acknowledged: dict[str, list[str]] = {f"s{w}": [] for w in range(WRITERS)}
        stop = asyncio.Event()

        async def writer(session: str) -> None:
            n = 0
            while not stop.is_set():
                content = f"{session}-{n}"
                n += 1
                if await save(app, session, content):
                    acknowledged[session].append(content)

        def acked() -> int:
            if any(task.done() for task in writers):
                return 1 << 30  # a writer failed: on to gather() and its error
            return sum(len(contents) for contents in acknowledged.values())

        writers = [asyncio.create_task(writer(session)) for session in acknowledged]
        try:
            await until(lambda: acked() >= 30)
            before_kill = acked()
            await kill_database(data_dir)
            # The writers keep going through the crash and the restart, untouched.
            supervisor = app.services.database_process
            assert supervisor is not None
            await until(lambda: supervisor.restarts == 1)
            await until_healthy(app)
            await until(lambda: acked() >= before_kill + 30)
        finally:
            stop.set()
            await asyncio.gather(*writers)

        body = await health(app)
        assert body["status"] == "ok"
        assert body["embeddedDatabase"] == {"state": "running", "restarts": 1, "failedAttempts": 0}
        assert running_pid(data_dir) != first_pid
        for session, contents in acknowledged.items():
            kept = await stored(app, session)
            missing = [content for content in contents if content not in kept]
            assert missing == [], f"acknowledged, then lost in the crash: {missing}"
        assert any(
            "embedded database" in r.message and "exited" in r.message for r in caplog.records
        )
        assert any("running again" in r.message for r in caplog.records)


async def test_a_keys_command_after_a_crash_uses_the_database_the_server_uses(
    tmp_path: Path, data_dir: Path, raw: FakeUpstream
) -> None:
    async with launch(tmp_path, **provider_env(raw), **SUPERVISED) as app:
        await until_healthy(app)
        await kill_database(data_dir)
        # Whichever comes first, the CLI or the server's supervisor, starts it again:
        # there is one database, and both see the same keys.
        created = run_cli(
            ["keys", "create", "--user", "ops", "--name", "after the crash"],
            {"AIPASTA_DATA_DIR": str(data_dir), "AIPASTA_LOG_LEVEL": "WARNING"},
        )
        assert created.returncode == 0, created.stderr
        await until_healthy(app)

        async def listed() -> list[tuple[str, str]] | None:
            # /health can say connected before a pooled connection to the killed server
            # has failed: that first failure marks the database away until it reconnects.
            try:
                keys = await ApiKeyStore(app.services.database).list()
            except DatabaseUnavailable:
                return None
            return [(key.userId, key.name) for key in keys]

        assert await wait_until(listed, within=60) == [("ops", "after the crash")]
        supervisor = app.services.database_process
        assert isinstance(supervisor, EmbeddedSupervisor) and supervisor.state == "running"
        assert supervisor.lease is not None
        assert supervisor.lease.pid == running_pid(data_dir)


class ManualSleep:
    """An injected sleep: records each wait and returns when the test lets it."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._permits: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self._permits.get()

    async def pass_one(self) -> None:
        waiting = len(self.delays)
        self._permits.put_nowait(None)
        await until(lambda: len(self.delays) > waiting)


async def test_an_unusable_data_folder_is_retried_with_doubling_back_off(
    tmp_path: Path, data_dir: Path
) -> None:
    data_dir.mkdir()
    (data_dir / "db").write_text("not a folder")  # where the database files must go
    settings = make_settings(
        tmp_path,
        AIPASTA_DB_TIMEOUT_MS=300,
        AIPASTA_DB_RETRY_SECONDS=0.05,
        AIPASTA_EMBEDDED_RESTART_BACKOFF=0.5,
        AIPASTA_EMBEDDED_RESTART_MAX_BACKOFF=4,
    )
    sleep = ManualSleep()
    database, supervisor = await serve_database(settings, sleep=sleep)
    try:
        assert supervisor is not None
        await until(lambda: len(sleep.delays) == 1)
        for _ in range(4):
            await sleep.pass_one()
        assert sleep.delays == [0.5, 1.0, 2.0, 4.0, 4.0]
        assert (supervisor.state, supervisor.failed_attempts) == ("starting", 5)
        assert not database.available

        (data_dir / "db").unlink()
        sleep._permits.put_nowait(None)
        assert await database.wait_connected(within=60)
        assert (supervisor.state, supervisor.failed_attempts) == ("running", 0)
    finally:
        await close_served_database(database, supervisor)


async def test_a_database_that_dies_soon_after_each_start_is_restarted_ever_more_slowly(
    tmp_path: Path, data_dir: Path
) -> None:
    settings = make_settings(
        tmp_path,
        AIPASTA_DB_TIMEOUT_MS=300,
        AIPASTA_DB_RETRY_SECONDS=0.05,
        AIPASTA_EMBEDDED_CHECK_SECONDS=0.25,
        AIPASTA_EMBEDDED_RESTART_BACKOFF=0.5,
        AIPASTA_EMBEDDED_RESTART_MAX_BACKOFF=4,
    )
    sleep = ManualSleep()
    now = [1000.0]
    database, supervisor = await serve_database(settings, sleep=sleep, clock=lambda: now[0])
    try:
        assert supervisor is not None
        await until(lambda: len(sleep.delays) == 1)  # the first check
        pids = [running_pid(data_dir)]
        for _ in range(3):  # each time it is found dead a moment after it started
            await kill_database(data_dir, until_files_released=True)
            await sleep.pass_one()  # the check finds it dead: a back-off first
            await sleep.pass_one()  # the back-off: started again, then the next check
            pids.append(running_pid(data_dir))
        assert sleep.delays == [0.25, 0.5, 0.25, 1.0, 0.25, 2.0, 0.25]
        # After a long run, it is started again at once and the back-off starts over.
        now[0] += 4
        await kill_database(data_dir, until_files_released=True)
        await sleep.pass_one()
        pids.append(running_pid(data_dir))
        assert sleep.delays[7:] == [0.25]
        assert len(set(pids)) == 5
        assert (supervisor.state, supervisor.restarts) == ("running", 4)
        assert await database.wait_connected(within=60)
    finally:
        await close_served_database(database, supervisor)


async def test_health_reports_a_database_that_cannot_start_and_recovers_once_it_can(
    tmp_path: Path, data_dir: Path, raw: FakeUpstream
) -> None:
    data_dir.mkdir()
    (data_dir / "db").write_text("not a folder")
    async with launch(tmp_path, **provider_env(raw), **SUPERVISED) as app:
        body = await health(app)
        assert body["status"] == "degraded"
        assert body["services"]["database"] == "starting"
        assert body["embeddedDatabase"]["state"] == "starting"
        assert body["embeddedDatabase"]["failedAttempts"] >= 1
        error = await app.error(
            SAVE, {"input": {"sessionId": "s", "content": "too early", "isUser": True}}
        )
        assert error["extensions"]["code"] == "DATABASE_UNAVAILABLE"

        (data_dir / "db").unlink()
        body = await until_healthy(app)
        assert body["status"] == "ok"
        assert body["embeddedDatabase"] == {"state": "running", "restarts": 0, "failedAttempts": 0}
        assert await save(app, "s", "now it works")
        assert await stored(app, "s") == ["now it works"]


def test_a_lost_state_file_never_starts_a_second_database_on_the_same_files(
    data_dir: Path,
) -> None:
    embedded = EmbeddedMongo(data_dir, start_timeout=10)
    lease = embedded.acquire()
    try:
        (data_dir / "embedded.json").unlink()  # as if a user had wiped it by hand
        with pytest.raises(EmbeddedError, match="still has the files"):
            EmbeddedMongo(data_dir, start_timeout=1).acquire()
        # The one database that has the files is untouched and still the only one.
        client: MongoClient[dict[str, Any]] = MongoClient(lease.uri, serverSelectionTimeoutMS=3000)
        try:
            assert client.admin.command("ping")["ok"] == 1
        finally:
            client.close()
        assert secantus_processes(data_dir) == [lease.pid]
    finally:
        (data_dir / "embedded.json").write_text(json.dumps({"pid": lease.pid, "port": lease.port}))
        embedded.release(lease)


def secantus_processes(data_dir: Path) -> list[int]:
    """Pids of the SecantusDB processes whose storage is this data folder's."""
    storage = str((data_dir / "db").resolve())
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rpartition(")")[2].split()[:1]
        except OSError:
            continue
        if b"secantus" in argv and storage.encode() in argv and state != ["Z"]:
            found.append(int(proc.name))
    return found
