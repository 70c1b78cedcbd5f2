"""`aipasta keys` against the database, with no server running."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from documents.database import Database
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings
from tests.wiring.test_cli import _environment, _unused_port, _wait_for_health

AIPASTA = str(Path(sys.executable).parent / "aipasta")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIPASTA, *args],
        cwd=env.get("AIPASTA_DATA_DIR"),  # not the repository: its .env files stay out
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_create_list_revoke(
    tmp_path: Path, mongo_uri: str, clean_db: str, database: Database
) -> None:
    env = {
        "MONGODB_URI": mongo_uri,
        "AIPASTA_DB_NAME": clean_db,
        "AIPASTA_DATA_DIR": str(tmp_path),
        "AIPASTA_LOG_LEVEL": "WARNING",
    }
    created = run(["keys", "create", "--user", "alice", "--name", "laptop", "--admin"], env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ap_") and len(key) == 46

    authenticator = Authenticator(make_settings(tmp_path), ApiKeyStore(database))
    identity = await authenticator.authenticate(f"Bearer {key}")
    assert identity is not None and identity.user_id == "alice" and identity.is_admin

    listed = run(["keys", "list"], env)
    assert listed.returncode == 0
    assert key[:10] in listed.stdout and "alice" in listed.stdout and "laptop" in listed.stdout
    assert key not in listed.stdout

    revoked = run(["keys", "revoke", key[:10]], env)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in run(["keys", "list"], env).stdout
    (record,) = await ApiKeyStore(database).list()
    assert record.revoked

    again = run(["keys", "revoke", key[:10]], env)
    assert again.returncode == 2
    assert "no live key" in again.stderr


def test_bad_user_id_is_refused(tmp_path: Path, mongo_uri: str, clean_db: str) -> None:
    env = {"MONGODB_URI": mongo_uri, "AIPASTA_DB_NAME": clean_db, "AIPASTA_DATA_DIR": str(tmp_path)}
    result = run(["keys", "create", "--user", '{"$ne": ""}'], env)
    assert result.returncode == 2
    assert "user id" in result.stderr


def test_auth_off_is_refused_on_a_public_interface(tmp_path: Path) -> None:
    result = run(
        ["serve", "--host", "0.0.0.0"],
        {"AIPASTA_AUTH": "off", "AIPASTA_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "AIPASTA_AUTH" in line and "loopback" in line


def test_keys_made_beside_a_running_server_on_the_embedded_database(tmp_path: Path) -> None:
    """Both processes share the one embedded database through the data folder."""
    port, closed = _unused_port(), f"http://127.0.0.1:{_unused_port()}"
    env = {
        "AIPASTA_DATA_DIR": str(tmp_path),
        "OPENROUTER_BASE_URL": closed,
        "HUGGINGFACE_BASE_URL": closed,
        "AIPASTA_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "server.log"
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [AIPASTA, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_environment(**env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        _wait_for_health(server, base_url, log)
        created = run(["keys", "create", "--user", "ops", "--admin"], env)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()

        request = urllib.request.Request(
            f"{base_url}/graphql",
            data=json.dumps({"query": "{ apiKeys { userId role } }"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        keys = body["data"]["apiKeys"]
        # The server's own first-start admin key, and the one made beside it.
        assert {"userId": "ops", "role": "admin"} in keys
        assert {"userId": "admin", "role": "admin"} in keys
        assert server.poll() is None  # the key command left the shared database running
    finally:
        server.terminate()
        server.wait(timeout=30)
