"""EmbeddedMongo against the real server process: sharing, stopping, persistence, crash recovery."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from aipasta.database import close_database, open_database
from aipasta.embedded import EmbeddedMongo, Lease
from tests.conftest import make_settings


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(lease: Lease) -> bool:
    client: MongoClient[dict[str, Any]] = MongoClient(lease.uri, serverSelectionTimeoutMS=3000)
    try:
        return client.admin.command("ping").get("ok") == 1
    finally:
        client.close()


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    # Whatever a failing test left behind, no server outlives it.
    EmbeddedMongo(path).stop()


def test_two_users_share_one_server_and_the_last_to_leave_stops_it(data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir)
    first = embedded.acquire()
    second = EmbeddedMongo(data_dir).acquire()

    assert first.started is True
    assert second.started is False
    assert (second.pid, second.port, second.uri) == (first.pid, first.port, first.uri)
    assert first.user_file != second.user_file
    state = json.loads((data_dir / "embedded.json").read_text())
    assert (state["pid"], state["port"]) == (first.pid, first.port)

    embedded.release(second)
    assert _alive(first.pid)
    assert _answers(first), "the server stopped while a user still held it"

    embedded.release(first)
    assert not _alive(first.pid)
    assert not (data_dir / "embedded.json").exists()
    assert list((data_dir / "embedded.users").iterdir()) == []


def test_data_survives_a_stop_and_a_new_start(data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir)
    lease = embedded.acquire()
    client: MongoClient[dict[str, Any]] = MongoClient(lease.uri)
    try:
        client.aipasta.notes.insert_one({"_id": "kept", "text": "still here"})
    finally:
        client.close()
    embedded.release(lease)
    assert not _alive(lease.pid)
    assert any((data_dir / "db").iterdir()), "nothing was written under <data dir>/db"

    again = embedded.acquire()
    try:
        assert again.started is True
        client = MongoClient(again.uri)
        try:
            assert client.aipasta.notes.find_one({"_id": "kept"}) == {
                "_id": "kept",
                "text": "still here",
            }
        finally:
            client.close()
    finally:
        embedded.release(again)


def test_a_stale_state_file_is_ignored_and_a_new_server_started(data_dir: Path) -> None:
    dead = _dead_pid()
    data_dir.mkdir(parents=True)
    (data_dir / "embedded.json").write_text(json.dumps({"pid": dead, "port": _closed_port()}))

    embedded = EmbeddedMongo(data_dir)
    lease = embedded.acquire()
    try:
        assert lease.started is True
        assert lease.pid != dead
        assert _answers(lease)
        state = json.loads((data_dir / "embedded.json").read_text())
        assert state == {"pid": lease.pid, "port": lease.port}
    finally:
        embedded.release(lease)
    assert not _alive(lease.pid)


def test_a_crashed_user_does_not_keep_the_server_alive(data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir)
    lease = embedded.acquire()
    crashed = data_dir / "embedded.users" / f"{_dead_pid()}-x"
    crashed.touch()

    embedded.release(lease)

    assert not _alive(lease.pid), "a dead user's file kept the server running"
    assert not (data_dir / "embedded.json").exists()
    assert not crashed.exists()


def _cache_size_of(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"--cache-size") + 1].decode()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to read argv")
def test_the_server_runs_with_the_cache_size_of_the_process_that_starts_it(
    data_dir: Path,
) -> None:
    first = EmbeddedMongo(data_dir, cache_mb=48).acquire()
    # A later user with another size shares the running server as it is.
    second = EmbeddedMongo(data_dir, cache_mb=512).acquire()
    try:
        assert first.started and not second.started
        assert second.pid == first.pid
        assert _cache_size_of(first.pid) == "48M"
    finally:
        EmbeddedMongo(data_dir).release(second)
        EmbeddedMongo(data_dir).release(first)


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc to read argv")
async def test_the_embedded_cache_setting_reaches_the_server(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, embedded_cache_mb=40)
    database, lease = await open_database(settings)
    try:
        assert lease is not None and database is not None
        assert _cache_size_of(lease.pid) == "40M"
    finally:
        await close_database(settings, database, lease)
