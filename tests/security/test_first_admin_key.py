"""The first-start admin key is shown once: on the terminal when there is one; otherwise
in a file of the data folder readable by its owner only, and the log says where (never
the key itself)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from aipasta.app import create_app
from aipasta.settings import Settings
from tests.conftest import make_settings
from tests.support.fake_upstream import FakeUpstream
from tests.support.server import serve

KEY = re.compile(r"ap_[A-Za-z0-9_-]{43}")
API_KEYS = "{ apiKeys { userId role } }"


def first_start_settings(
    tmp_path: Path, mongo_uri: str, db_name: str, upstream: FakeUpstream
) -> Settings:
    return make_settings(
        tmp_path,
        MONGODB_URI=mongo_uri,
        AIPASTA_DB_NAME=db_name,
        AIPASTA_AUTH="required",
        OPENROUTER_BASE_URL=upstream.url("openrouter"),
        HUGGINGFACE_BASE_URL=upstream.url("hf"),
    )


async def test_without_a_terminal_the_key_goes_to_an_owner_only_file_and_the_log_says_where(
    tmp_path: Path,
    mongo_uri: str,
    clean_db: str,
    upstream: FakeUpstream,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = first_start_settings(tmp_path, mongo_uri, clean_db, upstream)
    app = create_app(settings, interactive=lambda: False)
    async with serve(app) as running:
        (written,) = (tmp_path / "data").glob("admin-key-*.txt")
        assert stat.S_IMODE(written.stat().st_mode) == 0o600
        (key,) = set(KEY.findall(written.read_text()))
        # The key in the file is the admin key that was made.
        body = await running.graphql(API_KEYS, headers={"Authorization": f"Bearer {key}"})
        assert body["data"]["apiKeys"] == [{"userId": "admin", "role": "admin"}]

    assert str(written) in caplog.text
    assert key not in caplog.text
    assert key not in capsys.readouterr().err


async def test_on_a_terminal_the_key_is_printed_and_no_file_is_left(
    tmp_path: Path,
    mongo_uri: str,
    clean_db: str,
    upstream: FakeUpstream,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = first_start_settings(tmp_path, mongo_uri, clean_db, upstream)
    async with serve(create_app(settings, interactive=lambda: True)):
        pass

    (key,) = set(KEY.findall(capsys.readouterr().err))
    assert key not in caplog.text
    assert list((tmp_path / "data").glob("admin-key-*")) == []
