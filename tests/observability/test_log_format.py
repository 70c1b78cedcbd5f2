"""One log format per process: with AIPASTA_LOG_FORMAT=json every line the server writes,
uvicorn's access and error lines included, is one JSON object."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

from aipasta.embedded import EmbeddedMongo
from tests.wiring.test_cli import (
    AIPASTA,
    STOP_TIMEOUT,
    _environment,
    _unused_port,
    _wait_for_health,
)


def test_json_logs_carry_uvicorn_and_operation_lines(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _unused_port()
    closed = f"http://127.0.0.1:{_unused_port()}"
    base_url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [str(AIPASTA), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_environment(
                AIPASTA_DATA_DIR=str(data_dir),
                AIPASTA_LOG_FORMAT="json",
                AIPASTA_AUTH="off",
                AIPASTA_SIMULATOR="off",
                OPENROUTER_BASE_URL=closed,
                HUGGINGFACE_BASE_URL=closed,
            ),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_health(server, base_url, log)
        request = urllib.request.Request(
            f"{base_url}/graphql",
            data=json.dumps({"query": "query Probe { health { status } }"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            request_id = response.headers["X-Request-ID"]
        server.send_signal(signal.SIGINT)
        server.wait(timeout=STOP_TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        EmbeddedMongo(data_dir).stop()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is JSON
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "uvicorn.access", "aipasta.operations"} <= loggers
    (operation,) = [e for e in entries if e["logger"] == "aipasta.operations"]
    assert (operation["operation_name"], operation["request_id"]) == ("Probe", request_id)
    access = [e for e in entries if e["logger"] == "uvicorn.access"]
    assert any("/graphql" in e["message"] for e in access)
