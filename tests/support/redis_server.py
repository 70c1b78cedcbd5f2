"""A real `redis-server` process of the tests' own, on a free loopback port.

Nothing is persisted (no RDB, no AOF): a stopped and restarted server starts empty, as a
Redis that lost its data would. Tests skip, saying why, where `redis-server` or the
Redis client (`aipasta[redis]`) is not installed.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import time

import pytest

START_TIMEOUT = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def require_redis() -> str:
    """The redis-server binary, or skip the test with the reason."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    if importlib.util.find_spec("coredis") is None:
        pytest.skip("the Redis client is not installed: pip install -e '.[redis]'")
    return binary


class RedisServer:
    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.process is None
        self.process = subprocess.Popen(
            [
                self.binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while self.command(b"PING") != b"+PONG\r\n":
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)  # polling a process that is starting

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(timeout=10)

    def flush(self) -> None:
        assert self.command(b"FLUSHALL") == b"+OK\r\n"

    def command(self, name: bytes) -> bytes | None:
        """One argument-less command's raw reply, or None when nothing answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(name + b"\r\n")
                return conn.recv(64)
        except OSError:
            return None
