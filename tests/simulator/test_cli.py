"""`aipasta simulate-upstream`, run as a real process the way a user runs it."""

from __future__ import annotations

import json
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

AIPASTA = Path(sys.executable).parent / "aipasta"
START_TIMEOUT = 30.0
SMALL_FAST_ANSWERS = ("--tokens", "6", "--token-delay-ms", "0", "--seed", "3")


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


def _wait_for_models(server: subprocess.Popen[bytes], base_url: str, log: Path) -> Any:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"simulator exited with {server.returncode}:\n{log.read_text()}")
        try:
            return _request(f"{base_url}/models")
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # not listening yet
    pytest.fail(f"/models did not answer within {START_TIMEOUT:g}s:\n{log.read_text()}")


def test_simulate_upstream_serves_models_and_chats_until_stopped(tmp_path: Path) -> None:
    port = _unused_port()
    base_url = f"http://127.0.0.1:{port}/api/v1"
    log = tmp_path / "simulator.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [str(AIPASTA), "simulate-upstream", "--port", str(port), *SMALL_FAST_ANSWERS],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        status, listing = _wait_for_models(server, base_url, log)
        assert status == 200
        assert "sim/chat" in {model["id"] for model in listing["data"]}

        status, answer = _request(
            f"{base_url}/chat/completions",
            {"model": "sim/chat", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert status == 200
        assert len(answer["choices"][0]["message"]["content"].split()) == 6
        assert answer["usage"]["completion_tokens"] == 6

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=START_TIMEOUT) == 0, log.read_text()
        assert f"OPENROUTER_BASE_URL={base_url}" in log.read_text()
        assert "Traceback" not in log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_simulate_upstream_refuses_bad_options(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(AIPASTA), "simulate-upstream", "--error-rate", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "error_rate must be between 0 and 1" in result.stderr
