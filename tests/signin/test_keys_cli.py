"""`aipasta keys` against the database, with no server running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from documents.database import Database
from resolvers.identity.authenticator import Authenticator
from resolvers.identity.key_store import ApiKeyStore
from tests.conftest import make_settings

AIPASTA = str(Path(sys.executable).parent / "aipasta")


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIPASTA, *args],
        env={**os.environ, **env},
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
