"""The `aipasta` console script, run as a real process the way a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema

from aipasta.embedded import EmbeddedMongo

AIPASTA = Path(sys.executable).parent / "aipasta"
SECRET_KEY = "sk-or-secret-123"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0  # the embedded database may take 15 s to stop (see aipasta.embedded)


def _environment(**values: str) -> dict[str, str]:
    """The current environment minus anything that configures the gateway, plus `values`."""
    settings_names = {
        "OPENROUTER_API_KEY",
        "HUGGINGFACE_API_KEY",
        "MONGODB_URI",
        "NEXTAUTH_SECRET",
        "OPENROUTER_BASE_URL",
        "HUGGINGFACE_BASE_URL",
    }
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in settings_names and not name.upper().startswith("AIPASTA_")
    }
    env.update(values)
    return env


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIPASTA), *args],
        cwd=cwd,  # no .env / .env.local of the repository is read
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_console_script_is_installed() -> None:
    assert AIPASTA.is_file(), f"no console script at {AIPASTA}: is the project installed?"


def test_export_schema_prints_parsable_sdl(tmp_path: Path) -> None:
    result = _run(["export-schema"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "type Query" in result.stdout
    schema = build_schema(result.stdout)
    assert schema.query_type is not None
    assert "health" in schema.query_type.fields


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["serve"], {"AIPASTA_PORT": "abc"}, id="env-not-a-number"),
        pytest.param(["serve", "--port", "70000"], {}, id="flag-out-of-range"),
    ],
)
def test_serve_with_an_invalid_setting_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    result = _run(args, tmp_path, **env)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "AIPASTA_PORT" in lines[0]
    assert "Traceback" not in result.stderr


def test_serve_with_an_invalid_setting_does_not_print_api_keys(tmp_path: Path) -> None:
    (tmp_path / ".env.local").write_text("HUGGINGFACE_API_KEY=hf_from_env_local_secret\n")
    result = _run(
        ["serve"], tmp_path, OPENROUTER_API_KEY=SECRET_KEY, AIPASTA_PORT="abc", AIPASTA_ENV="qa"
    )
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "AIPASTA_PORT" in output
    assert SECRET_KEY not in output
    assert "hf_from_env_local_secret" not in output


def _get(url: str, accept: str = "application/json") -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get_content_type(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get_content_type(), error.read().decode()


def _wait_for_health(server: subprocess.Popen[bytes], base_url: str, log: Path) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}:\n{log.read_text()}")
        try:
            status, content_type, body = _get(f"{base_url}/health")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # not listening yet
            continue
        assert status == 200, body
        assert content_type == "application/json"
        return json.loads(body)
    pytest.fail(f"/health did not answer within {START_TIMEOUT:g}s:\n{log.read_text()}")


@pytest.mark.parametrize(
    ("stop_signal", "exit_codes"),
    [
        pytest.param(signal.SIGINT, {0}, id="SIGINT"),
        # uvicorn re-raises SIGTERM after its graceful shutdown (as supervisors expect).
        pytest.param(signal.SIGTERM, {0, -signal.SIGTERM}, id="SIGTERM"),
    ],
)
def test_serve_starts_the_embedded_database_and_stops_it_on_exit(
    tmp_path: Path, stop_signal: signal.Signals, exit_codes: set[int]
) -> None:
    data_dir = tmp_path / "data"
    port = _unused_port()
    closed = f"http://127.0.0.1:{_unused_port()}"  # nothing listens: no internet is tried
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [str(AIPASTA), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_environment(
                AIPASTA_DATA_DIR=str(data_dir),
                OPENROUTER_BASE_URL=closed,
                HUGGINGFACE_BASE_URL=closed,
            ),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        health = _wait_for_health(server, base_url, log)
        assert health["status"] in {"ok", "degraded"}
        assert health["services"]["database"] == "connected"
        assert health["services"]["openrouter"] == "not_configured"
        assert health["services"]["huggingface"] == "not_configured"

        status, content_type, body = _get(f"{base_url}/graphql", accept="text/html")
        assert status == 200
        assert content_type == "text/html"
        assert "graphiql" in body.lower()

        state = json.loads((data_dir / "embedded.json").read_text())
        db_pid = int(state["pid"])
        assert _alive(db_pid)

        server.send_signal(stop_signal)
        try:
            code = server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running {STOP_TIMEOUT:g}s after {stop_signal.name}")
        assert code in exit_codes, log.read_text()
        assert not _alive(db_pid), "the embedded database outlived the server"
        assert not (data_dir / "embedded.json").exists()
        assert "Traceback" not in log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        # A server killed hard leaves its database (own session) running: stop it.
        EmbeddedMongo(data_dir).stop()
