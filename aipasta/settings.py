"""Every setting the gateway reads, in one pydantic-settings class.

Settings are built once by the CLI (or a test) and passed down; nothing reads the
environment anywhere else. Order of precedence: real environment variables, then
`.env.local`, then `.env` (the seed frontend keeps its keys in `.env.local`).

This module is a leaf: it imports nothing from the project, so any layer may use it.
"""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_HUGGINGFACE_BASE_URL = "https://router.huggingface.co/v1"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class Settings(BaseSettings):
    """The gateway's configuration. Secrets are SecretStr and never printed."""

    model_config = SettingsConfigDict(
        env_file=(".env", ".env.local"),
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Seed names, unchanged.
    openrouter_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENROUTER_API_KEY")
    )
    huggingface_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HUGGINGFACE_API_KEY")
    )
    mongodb_uri: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI")
    )
    nextauth_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NEXTAUTH_SECRET")
    )

    openrouter_base_url: str = Field(
        default=DEFAULT_OPENROUTER_BASE_URL,
        validation_alias=AliasChoices("OPENROUTER_BASE_URL"),
    )
    huggingface_base_url: str = Field(
        default=DEFAULT_HUGGINGFACE_BASE_URL,
        validation_alias=AliasChoices("HUGGINGFACE_BASE_URL"),
    )

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("AIPASTA_HOST"))
    port: int = Field(default=8000, ge=0, le=65535, validation_alias=AliasChoices("AIPASTA_PORT"))
    data_dir: Path = Field(
        default=Path(".aipasta"), validation_alias=AliasChoices("AIPASTA_DATA_DIR")
    )
    env: Environment = Field(
        default=Environment.DEVELOPMENT, validation_alias=AliasChoices("AIPASTA_ENV")
    )
    log_level: LogLevel = Field(
        default=LogLevel.INFO, validation_alias=AliasChoices("AIPASTA_LOG_LEVEL")
    )

    # Catalog cache.
    models_ttl_seconds: int = Field(
        default=1800, ge=1, validation_alias=AliasChoices("AIPASTA_MODELS_TTL_SECONDS")
    )
    models_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        validation_alias=AliasChoices("AIPASTA_MODELS_RETRY_SECONDS"),
        description="After a failed refresh, how long to serve the stale list before retrying.",
    )

    # Upstream HTTP.
    upstream_connect_timeout: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("AIPASTA_UPSTREAM_CONNECT_TIMEOUT")
    )
    catalog_timeout: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("AIPASTA_CATALOG_TIMEOUT")
    )
    upstream_retries: int = Field(
        default=2, ge=0, le=10, validation_alias=AliasChoices("AIPASTA_UPSTREAM_RETRIES")
    )
    upstream_backoff_seconds: float = Field(
        default=0.5, ge=0, validation_alias=AliasChoices("AIPASTA_UPSTREAM_BACKOFF_SECONDS")
    )
    upstream_max_retry_after: float = Field(
        default=10.0, ge=0, validation_alias=AliasChoices("AIPASTA_UPSTREAM_MAX_RETRY_AFTER")
    )
    app_url: str = Field(
        default="http://localhost:3000",
        validation_alias=AliasChoices("AIPASTA_APP_URL"),
        description="Sent to OpenRouter as HTTP-Referer.",
    )
    app_title: str = Field(default="AI Pasta", validation_alias=AliasChoices("AIPASTA_APP_TITLE"))

    # Database.
    db_name: str = Field(
        default="aipasta",
        pattern=r"^[A-Za-z0-9_-]{1,63}$",
        validation_alias=AliasChoices("AIPASTA_DB_NAME"),
    )
    db_timeout_ms: int = Field(
        default=2000, ge=100, validation_alias=AliasChoices("AIPASTA_DB_TIMEOUT_MS")
    )
    db_operation_timeout_ms: int = Field(
        default=5000, ge=100, validation_alias=AliasChoices("AIPASTA_DB_OPERATION_TIMEOUT_MS")
    )
    db_retry_seconds: float = Field(
        default=2.0, gt=0, validation_alias=AliasChoices("AIPASTA_DB_RETRY_SECONDS")
    )
    embedded_start_timeout: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("AIPASTA_EMBEDDED_START_TIMEOUT")
    )

    # GraphQL.
    graphiql: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("AIPASTA_GRAPHIQL"),
        description="Serve GraphiQL in the browser; defaults to on in development only.",
    )

    @field_validator("openrouter_base_url", "huggingface_base_url", "app_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @property
    def graphiql_enabled(self) -> bool:
        if self.graphiql is not None:
            return self.graphiql
        return self.env is Environment.DEVELOPMENT

    @property
    def host_is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class SettingsError(Exception):
    """Settings could not be built; the message names the variable and what is wrong."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings once, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = _variable_name(error.get("loc", ()))
        lines.append(f"invalid setting {name}: {error.get('msg', 'invalid value')}")
    return "; ".join(lines)


def _variable_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "?"
    field_name = str(loc[0])
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field_name.upper()
