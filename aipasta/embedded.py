"""The embedded MongoDB-compatible server used when MONGODB_URI is not set.

SecantusDB runs as its own process (it is GPL-2.0 and an optional extra, so the
gateway never imports it) with its files under `<data dir>/db`. Every gateway
process that needs it, a server or a CLI command, goes through the data folder:

- `embedded.lock`   an flock held while the state below is read or changed;
- `embedded.json`   pid and port of the running server;
- `embedded.users/` one file per user (`<pid>-<token>`); the last user to leave,
                    or the first to find only dead users, stops the server.

So two processes never open the same database files, and a crashed user does not
keep the server alive forever. These calls block: run them in a thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CACHE_SIZE = "256M"
STOP_TIMEOUT = 15.0
RESIGNAL_AFTER = 1.0


class EmbeddedError(Exception):
    """The embedded database could not be started or found."""


@dataclass(frozen=True)
class Lease:
    """A claim on the running embedded server; give it back with release()."""

    uri: str
    pid: int
    port: int
    user_file: Path
    started: bool


class EmbeddedMongo:
    def __init__(self, data_dir: Path, *, start_timeout: float = 30.0) -> None:
        self.data_dir = data_dir.resolve()
        self.start_timeout = start_timeout
        self._lock_path = self.data_dir / "embedded.lock"
        self._state_path = self.data_dir / "embedded.json"
        self._users_dir = self.data_dir / "embedded.users"
        self._storage = self.data_dir / "db"
        self._log_path = self.data_dir / "embedded.log"

    def acquire(self) -> Lease:
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedError(
                "MONGODB_URI is not set and the embedded database is not installed: "
                "install aipasta[embedded] or set MONGODB_URI"
            )
        self._users_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._running_state()
            started = state is None
            if state is None:
                self._prune_users(all_users=True)
                state = self._start()
            user_file = self._users_dir / f"{os.getpid()}-{secrets.token_hex(4)}"
            user_file.touch()
        pid, port = state
        return Lease(
            uri=f"mongodb://{HOST}:{port}/?directConnection=true",
            pid=pid,
            port=port,
            user_file=user_file,
            started=started,
        )

    def release(self, lease: Lease) -> None:
        with self._locked():
            lease.user_file.unlink(missing_ok=True)
            self._prune_users(all_users=False)
            if any(self._users_dir.iterdir()):
                return
            state = self._read_state()
            if state is not None and state[0] == lease.pid:
                self._stop(*state)
                self._state_path.unlink(missing_ok=True)

    def stop(self) -> bool:
        """Stop the server whoever uses it (for `aipasta db stop`). True if one ran."""
        with self._locked():
            state = self._running_state()
            if state is None:
                return False
            self._stop(*state)
            self._state_path.unlink(missing_ok=True)
            self._prune_users(all_users=True)
            return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_state(self) -> tuple[int, int] | None:
        try:
            raw = json.loads(self._state_path.read_text())
            return int(raw["pid"]), int(raw["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _running_state(self) -> tuple[int, int] | None:
        state = self._read_state()
        if state is None:
            return None
        pid, port = state
        if _alive(pid) and _port_open(port):
            return state
        self._state_path.unlink(missing_ok=True)
        return None

    def _prune_users(self, *, all_users: bool) -> None:
        for user in self._users_dir.iterdir():
            pid_text = user.name.split("-", 1)[0]
            if all_users or not pid_text.isdigit() or not _alive(int(pid_text)):
                user.unlink(missing_ok=True)

    def _start(self) -> tuple[int, int]:
        self._storage.mkdir(parents=True, exist_ok=True)
        last_error = "did not start"
        for _ in range(3):
            port = _free_port()
            with open(self._log_path, "ab") as log_file:
                process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    [
                        sys.executable,
                        "-m",
                        "secantus",
                        "--host",
                        HOST,
                        "--port",
                        str(port),
                        "--storage-path",
                        str(self._storage),
                        "--cache-size",
                        CACHE_SIZE,
                        "--log-level",
                        "WARNING",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    # Its own session: Ctrl-C on one user must not kill it under the others.
                    start_new_session=True,
                )
            if self._wait_ready(process, port):
                self._state_path.write_text(json.dumps({"pid": process.pid, "port": port}))
                log.info(
                    "embedded database started (pid %d, port %d, data in %s)",
                    process.pid,
                    port,
                    self._storage,
                )
                return process.pid, port
            last_error = f"exited with code {process.returncode}"
            if process.returncode is None:
                _terminate(process.pid, port)
                last_error = f"did not answer within {self.start_timeout:g}s"
        raise EmbeddedError(f"embedded database {last_error}; see {self._log_path}")

    def _wait_ready(self, process: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            if _port_open(port):
                return True
            time.sleep(0.05)
        return False

    def _stop(self, pid: int, port: int) -> None:
        _terminate(pid, port)
        log.info("embedded database stopped (pid %d)", pid)


def _terminate(pid: int, port: int) -> None:
    """SIGTERM, then patience; SIGKILL only past STOP_TIMEOUT.

    SecantusDB's main thread sleeps on a lock, and a SIGTERM that one of its other
    threads receives never wakes it: the server then keeps listening. So while the port
    still accepts connections, the signal is sent again. Once the port is closed the
    shutdown is under way (closing WiredTiger takes a moment), and another signal would
    re-enter it and wedge it, so none is sent.
    """
    deadline = time.monotonic() + STOP_TIMEOUT
    next_signal = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() >= next_signal:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            next_signal = time.monotonic() + RESIGNAL_AFTER
        _reap(pid)
        if not _alive(pid):
            return
        if not _port_open(port):
            next_signal = float("inf")
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)  # SIGKILL is not instant: a WNOHANG reap here can leave a zombie


def _reap(pid: int) -> None:
    # Collect our own child's exit status so it does not linger as a zombie.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    if _zombie(pid):
        return False  # exited; only its parent (another user, maybe) has not reaped it yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself hold spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((HOST, port)) == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
