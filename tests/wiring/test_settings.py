"""Settings: documented names, defaults, precedence, clear errors, secrets kept out of output."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aipasta.settings import (
    Environment,
    LogLevel,
    SettingsError,
    load_settings,
    setting_docs,
)

SECRETS = {
    "OPENROUTER_API_KEY": "sk-or-secret-123",
    "HUGGINGFACE_API_KEY": "hf_secret_456",
    "MONGODB_URI": "mongodb://admin:hunter2-secret@db.internal:27017/aipasta",
    "NEXTAUTH_SECRET": "nextauth-secret-789",
}


def _variable_names() -> set[str]:
    return {doc.env_name for doc in setting_docs()}


@pytest.fixture(autouse=True)
def workdir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No variable or .env file of the developer's machine reaches these tests."""
    for name in _variable_names() | {n for n in os.environ if n.upper().startswith("AIPASTA_")}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.data_dir == Path(".aipasta")
    assert settings.models_ttl_seconds == 1800
    assert settings.openrouter_base_url == "https://openrouter.ai/api/v1"
    assert settings.huggingface_base_url == "https://router.huggingface.co/v1"
    assert settings.env is Environment.DEVELOPMENT
    assert settings.log_level is LogLevel.INFO
    assert settings.openrouter_api_key is None
    assert settings.huggingface_api_key is None
    assert settings.mongodb_uri is None
    assert settings.nextauth_secret is None


def test_environment_variables_are_read_by_their_documented_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        **SECRETS,
        "OPENROUTER_BASE_URL": "http://127.0.0.1:9001/api/v1",
        "HUGGINGFACE_BASE_URL": "http://127.0.0.1:9002/v1/",
        "AIPASTA_HOST": "0.0.0.0",
        "AIPASTA_PORT": "8123",
        "AIPASTA_DATA_DIR": "/var/lib/aipasta",
        "AIPASTA_ENV": "production",
        "AIPASTA_LOG_LEVEL": "DEBUG",
        "AIPASTA_MODELS_TTL_SECONDS": "60",
    }.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.openrouter_api_key is not None
    assert settings.openrouter_api_key.get_secret_value() == SECRETS["OPENROUTER_API_KEY"]
    assert settings.huggingface_api_key is not None
    assert settings.huggingface_api_key.get_secret_value() == SECRETS["HUGGINGFACE_API_KEY"]
    assert settings.mongodb_uri is not None
    assert settings.mongodb_uri.get_secret_value() == SECRETS["MONGODB_URI"]
    assert settings.nextauth_secret is not None
    assert settings.nextauth_secret.get_secret_value() == SECRETS["NEXTAUTH_SECRET"]
    assert settings.openrouter_base_url == "http://127.0.0.1:9001/api/v1"
    assert settings.huggingface_base_url == "http://127.0.0.1:9002/v1"  # trailing / dropped
    assert settings.host == "0.0.0.0"
    assert settings.port == 8123
    assert settings.data_dir == Path("/var/lib/aipasta")
    assert settings.env is Environment.PRODUCTION
    assert settings.log_level is LogLevel.DEBUG
    assert settings.models_ttl_seconds == 60


def test_generic_variable_names_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # PORT (PaaS), HOST (zsh), ENV (Docker images) belong to other programs.
    for name, value in {
        "PORT": "1234",
        "HOST": "example.org",
        "ENV": "prod",
        "LOG_LEVEL": "nonsense",
        "DATA_DIR": "/elsewhere",
        "GRAPHIQL": "false",
    }.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.env is Environment.DEVELOPMENT
    assert settings.log_level is LogLevel.INFO
    assert settings.data_dir == Path(".aipasta")
    assert settings.graphiql_enabled is True


def test_environment_beats_env_local_beats_env_file(
    monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    (workdir / ".env").write_text(
        "AIPASTA_PORT=1111\nAIPASTA_HOST=10.0.0.1\nAIPASTA_MODELS_TTL_SECONDS=111\n"
        "OPENROUTER_API_KEY=from-dot-env\n"
    )
    (workdir / ".env.local").write_text(
        "AIPASTA_PORT=2222\nAIPASTA_HOST=10.0.0.2\nOPENROUTER_API_KEY=from-dot-env-local\n"
    )
    monkeypatch.setenv("AIPASTA_PORT", "3333")

    settings = load_settings()

    assert settings.port == 3333  # environment
    assert settings.host == "10.0.0.2"  # .env.local over .env
    assert settings.models_ttl_seconds == 111  # only in .env
    assert settings.openrouter_api_key is not None
    assert settings.openrouter_api_key.get_secret_value() == "from-dot-env-local"


def test_command_line_overrides_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPASTA_PORT", "3333")
    assert load_settings(AIPASTA_PORT=4444).port == 4444


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AIPASTA_PORT", "abc"),
        ("AIPASTA_PORT", "70000"),
        ("AIPASTA_ENV", "staging"),
        ("OPENROUTER_BASE_URL", "ftp://x"),
        ("HUGGINGFACE_BASE_URL", "router.huggingface.co"),
        ("AIPASTA_MODELS_TTL_SECONDS", "0"),
        ("AIPASTA_LOG_LEVEL", "LOUD"),
        ("AIPASTA_UPSTREAM_POOL_SIZE", "0"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert name in message
    assert "\n" not in message


def test_invalid_value_in_env_local_names_the_variable(workdir: Path) -> None:
    (workdir / ".env.local").write_text("AIPASTA_PORT=abc\n")
    with pytest.raises(SettingsError, match="AIPASTA_PORT"):
        load_settings()


def test_every_invalid_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPASTA_PORT", "abc")
    monkeypatch.setenv("AIPASTA_ENV", "staging")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert "AIPASTA_PORT" in str(raised.value)
    assert "AIPASTA_ENV" in str(raised.value)


def test_secrets_never_appear_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    for shown in (repr(settings), str(settings)):
        for secret in SECRETS.values():
            assert secret not in shown
        assert "hunter2" not in shown


def test_secrets_never_appear_in_a_settings_error(
    monkeypatch: pytest.MonkeyPatch, workdir: Path
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    (workdir / ".env.local").write_text("HUGGINGFACE_API_KEY=hf_from_file_secret\n")
    monkeypatch.setenv("AIPASTA_PORT", "abc")
    monkeypatch.setenv("OPENROUTER_BASE_URL", "ftp://x")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "AIPASTA_PORT" in message
    for secret in [*SECRETS.values(), "hf_from_file_secret", "hunter2"]:
        assert secret not in message
        assert secret not in repr(raised.value)
    # Not chained to pydantic's report, which would echo the input values in a traceback.
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


@pytest.mark.parametrize(
    ("env", "graphiql", "expected"),
    [
        ("development", None, True),
        ("production", None, False),
        ("development", "false", False),
        ("production", "true", True),
    ],
)
def test_graphiql_on_in_development_off_in_production_unless_set(
    monkeypatch: pytest.MonkeyPatch, env: str, graphiql: str | None, expected: bool
) -> None:
    monkeypatch.setenv("AIPASTA_ENV", env)
    if graphiql is not None:
        monkeypatch.setenv("AIPASTA_GRAPHIQL", graphiql)
    assert load_settings().graphiql_enabled is expected


@pytest.mark.parametrize("value", ["debug", "Debug", "DEBUG"])
def test_log_level_in_any_case(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIPASTA_LOG_LEVEL", value)
    assert load_settings().log_level is LogLevel.DEBUG


def test_models_fetch_timeout_keeps_its_former_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIPASTA_CATALOG_TIMEOUT", "3")
    assert load_settings().models_fetch_timeout == 3
