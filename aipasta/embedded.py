"""The embedded MongoDB-compatible server used when MONGODB_URI is not set.

SecantusDB runs as its own process (it is GPL-2.0 and an optional extra, so the
gateway never imports it) with its files under `<data dir>/db`. Every gateway
process that needs it, a server or a CLI command, goes through the data folder:

- `embedded.lock`   an flock held while the state below is read or changed;
- `embedded.json`   pid and port of the running server;
- `embedded.files.lock` an flock the database process itself holds (it inherits the
                    locked file) for as long as it lives: no second server is started
                    on the files while one still has them open, whatever the state says;
- `embedded.users/` one file per user (`<pid>-<token>`); the last user to leave,
                    or the first to find only dead users, stops the server.

A server that dies is started again by whichever process notices first (the API server
checks every second, see aipasta/supervisor.py), on the port it had when that port is
still free, so every process's client reconnects to the same address. A crashed user
does not keep the server alive forever. These calls block: run them in a thread.
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
# WiredTiger's cache, most of the database process's memory. History and usage queries read
# narrow index ranges, and the files stay in the OS page cache: bench/history.py answers as
# fast with 32 MiB as with 256 MiB, and the process holds ~100 MB instead of ~220 MB.
CACHE_MB = 32
STOP_TIMEOUT = 15.0
# After SIGKILL: how long to wait for the process to be gone.
KILL_WAIT = 5.0
RESIGNAL_AFTER = 1.0
FILES_RELEASE_WAIT = 5.0


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
    def __init__(
        self, data_dir: Path, *, start_timeout: float = 30.0, cache_mb: int = CACHE_MB
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.start_timeout = start_timeout
        # Only a server this process starts gets it: one already running keeps its own.
        self.cache_mb = cache_mb
        self._lock_path = self.data_dir / "embedded.lock"
        self._state_path = self.data_dir / "embedded.json"
        self._users_dir = self.data_dir / "embedded.users"
        self._files_lock_path = self.data_dir / "embedded.files.lock"
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
            user_file = self._users_dir / f"{os.getpid()}-{secrets.token_hex(4)}"
            lease = self._ensure(user_file)
            user_file.touch()
        return lease

    def ensure(self, lease: Lease) -> Lease:
        """The running server for the holder of `lease`, started again if it has exited.

        The lease that comes back names the server that runs now (`started` when this
        call started it); the holder keeps its place among the users.
        """
        self._users_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            lease.user_file.touch()
            return self._ensure(lease.user_file)

    def running(self, lease: Lease) -> bool:
        """Cheap check, without the lock: the leased server process still lives."""
        _reap(lease.pid)
        return _alive(lease.pid)

    def _ensure(self, user_file: Path) -> Lease:
        previous = self._read_state()
        state = self._running_state()
        started = state is None
        if state is None:
            # Users of the dead server that still live want the new one too.
            self._prune_users(all_users=False)
            state = self._start(prefer_port=previous[1] if previous else None)
        pid, port = state
        return Lease(
            uri=_uri(port),
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
            # Whichever server runs now: it may have been restarted since `lease` was taken.
            state = self._running_state()
            if state is not None:
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

    def _start(self, prefer_port: int | None = None) -> tuple[int, int]:
        self._storage.mkdir(parents=True, exist_ok=True)
        with open(self._files_lock_path, "a+") as files_lock:
            if not self._lock_files(files_lock.fileno()):
                raise EmbeddedError(
                    f"another database process still has the files in {self._storage} open"
                )
            # The child inherits the locked file and holds it until it exits; this
            # process lets go of its copy when the `with` closes it.
            return self._spawn(files_lock.fileno(), prefer_port)

    def _lock_files(self, files_lock: int) -> bool:
        # A killed server's last threads let go of the files a moment after it is gone.
        deadline = time.monotonic() + min(self.start_timeout, FILES_RELEASE_WAIT)
        while True:
            try:
                fcntl.flock(files_lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
            else:
                return True

    def _spawn(self, files_lock: int, prefer_port: int | None) -> tuple[int, int]:
        last_error = "did not start"
        for attempt in range(3):
            port = prefer_port if attempt == 0 and prefer_port is not None else _free_port()
            if _port_open(port):
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
                        f"{self.cache_mb}M",
                        "--log-level",
                        "WARNING",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    pass_fds=(files_lock,),
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
            # It may have exited between the reap and the look: collect it now, or our
            # own child lingers as a zombie that still answers os.kill(pid, 0).
            _reap(pid)
            return
        if not _port_open(port):
            next_signal = float("inf")
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)  # SIGKILL is not instant: a WNOHANG reap here can leave a zombie
    # Not our child (started by another process, or waitpid refused): SIGKILL still takes
    # a moment, and a caller told "stopped" must not find it running.
    killed_by = time.monotonic() + KILL_WAIT
    while _alive(pid) and time.monotonic() < killed_by:
        time.sleep(0.05)


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


def _uri(port: int) -> str:
    # No retryable writes: SecantusDB does not keep their records across a restart, so a
    # write retried on the restarted server after a crash that had already applied it
    # would be applied twice (an `$inc`) or fail (a duplicate `_id`).
    return f"mongodb://{HOST}:{port}/?directConnection=true&retryWrites=false"


def unused_uri() -> str:
    """An address where nothing listens (yet): for a client made before its server."""
    return _uri(_free_port())


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
