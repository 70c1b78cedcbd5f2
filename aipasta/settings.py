"""Every setting the gateway reads, in one pydantic-settings class.

Settings are built once by the CLI (or a test) and passed down; nothing reads the
environment anywhere else. Order of precedence: real environment variables, then
`.env.local`, then `.env` (the seed frontend keeps its keys in `.env.local`).

This module is a leaf: it imports nothing from the project, so any layer may use it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from limits import parse_many
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError
from strawberry.http.websocket_origin import normalize_allowed_origins

DEFAULT_OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
DEFAULT_HUGGINGFACE_BASE_URL = "https://router.huggingface.co/v1"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class AuthMode(StrEnum):
    REQUIRED = "required"
    OFF = "off"


class SimulatorMode(StrEnum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class FailMode(StrEnum):
    """What a request gets when the rate-limit store cannot be reached."""

    OPEN = "open"
    CLOSED = "closed"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# `Host` names every server answers to, and the binds that mean every interface.
ANY_HOST = "*"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", "[::]"})  # noqa: S104 - recognised, not bound
# A DNS name or an IPv4 address (no port, no scheme).
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")

# Later files win: the environment, then .env.local, then .env.
ENV_FILES = (".env", ".env.local")
RESERVED_PROVIDER_NAMES = frozenset({"openrouter", "huggingface", "simulator"})


class ExtraProvider(BaseModel):
    """An OpenAI-compatible server (Ollama, vLLM, LM Studio...) from AIPASTA_PROVIDERS."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    base_url: str
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
    prompt_price_per_million: Decimal | None = Field(default=None, ge=0)
    completion_price_per_million: Decimal | None = Field(default=None, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_PROVIDER_NAMES:
            raise ValueError(f"{value} is built in")
        return value


class Settings(BaseSettings):
    """The gateway's configuration. Secrets are SecretStr and never printed."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILES,
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
    log_format: LogFormat = Field(
        default=LogFormat.TEXT,
        validation_alias=AliasChoices("AIPASTA_LOG_FORMAT"),
        description="text (one line per record) or json (one JSON object per line), "
        "for the server's and uvicorn's logs alike.",
    )
    log_content: bool = Field(
        default=False,
        validation_alias=AliasChoices("AIPASTA_LOG_CONTENT"),
        description="Also log each operation's variables (message contents): debugging only.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AIPASTA_METRICS_TOKEN"),
        description="When set, GET /metrics needs `Authorization: Bearer <token>`.",
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
    models_fetch_timeout: float = Field(
        default=10.0,
        gt=0,
        # AIPASTA_CATALOG_TIMEOUT is its former name.
        validation_alias=AliasChoices("AIPASTA_MODELS_FETCH_TIMEOUT", "AIPASTA_CATALOG_TIMEOUT"),
        description=(
            "Seconds for one model-list request; a refresh round, retries included, "
            "gets three times this."
        ),
    )
    models_cold_start_wait: float = Field(
        default=2.0,
        ge=0,
        validation_alias=AliasChoices("AIPASTA_MODELS_COLD_START_WAIT"),
        description=(
            "Before the first lists are in, how long a query waits for them before "
            "answering with what is there."
        ),
    )
    answer_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        validation_alias=AliasChoices("AIPASTA_ANSWER_CACHE_BYTES"),
        description=(
            "Memory for the serialized answers of public catalog queries (`models`, `model`, "
            "`modelCatalog` lists), kept per query, variables and catalog version; 0 turns "
            "the answer cache off."
        ),
    )

    # Upstream HTTP.
    upstream_connect_timeout: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("AIPASTA_UPSTREAM_CONNECT_TIMEOUT")
    )
    upstream_pool_size: int = Field(
        default=2000,
        ge=1,
        validation_alias=AliasChoices("AIPASTA_UPSTREAM_POOL_SIZE"),
        description="Most upstream connections open at once, all providers together.",
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
    embedded_check_seconds: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("AIPASTA_EMBEDDED_CHECK_SECONDS"),
        description="How often the server checks that the embedded database still runs.",
    )
    embedded_restart_backoff: float = Field(
        default=0.5,
        gt=0,
        validation_alias=AliasChoices("AIPASTA_EMBEDDED_RESTART_BACKOFF"),
        description="First wait before starting the embedded database again (doubles).",
    )
    embedded_restart_max_backoff: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("AIPASTA_EMBEDDED_RESTART_MAX_BACKOFF"),
        description="Longest wait between two starts of the embedded database.",
    )

    # Chat.
    providers: list[ExtraProvider] = Field(
        default_factory=list,
        validation_alias=AliasChoices("AIPASTA_PROVIDERS"),
        description="JSON list of extra OpenAI-compatible providers.",
    )
    simulator: SimulatorMode = Field(
        default=SimulatorMode.AUTO,
        validation_alias=AliasChoices("AIPASTA_SIMULATOR"),
        description="The built-in simulated provider: auto (on in development when no "
        "provider is configured), on or off.",
    )
    simulator_token_delay_ms: float = Field(
        default=20.0,
        ge=0,
        le=10_000,
        validation_alias=AliasChoices("AIPASTA_SIMULATOR_TOKEN_DELAY_MS"),
        description="The built-in simulator's pause before each token it streams.",
    )
    chat_connect_timeout: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("AIPASTA_CHAT_CONNECT_TIMEOUT")
    )
    chat_first_token_timeout: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("AIPASTA_CHAT_FIRST_TOKEN_TIMEOUT")
    )
    chat_idle_timeout: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("AIPASTA_CHAT_IDLE_TIMEOUT")
    )
    chat_total_timeout: float = Field(
        default=600.0, gt=0, validation_alias=AliasChoices("AIPASTA_CHAT_TOTAL_TIMEOUT")
    )
    chat_retry_backoff: float = Field(
        default=0.5, ge=0, validation_alias=AliasChoices("AIPASTA_CHAT_RETRY_BACKOFF")
    )
    chat_retry_max_wait: float = Field(
        default=5.0,
        ge=0,
        validation_alias=AliasChoices("AIPASTA_CHAT_RETRY_MAX_WAIT"),
        description="Cap on an upstream's Retry-After before retrying the same model.",
    )
    stream_coalesce_ms: float = Field(
        default=30.0, ge=0, validation_alias=AliasChoices("AIPASTA_STREAM_COALESCE_MS")
    )
    stream_buffer_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        validation_alias=AliasChoices("AIPASTA_STREAM_BUFFER_BYTES"),
        description="Answer text read ahead of a slow client per stream; the upstream read "
        "pauses beyond it.",
    )
    stream_send_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("AIPASTA_STREAM_SEND_TIMEOUT"),
        description="Seconds a websocket client may take to accept a message before it is "
        "disconnected.",
    )
    max_compare: int = Field(
        default=6, ge=1, le=20, validation_alias=AliasChoices("AIPASTA_MAX_COMPARE")
    )

    # Identity.
    auth: AuthMode = Field(default=AuthMode.REQUIRED, validation_alias=AliasChoices("AIPASTA_AUTH"))
    jwt_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("AIPASTA_JWT_SECRET"),
        description="HS256 secret for bearer JWTs; falls back to NEXTAUTH_SECRET.",
    )
    jwt_audience: str | None = Field(
        default=None, validation_alias=AliasChoices("AIPASTA_JWT_AUDIENCE")
    )
    jwt_issuer: str | None = Field(
        default=None, validation_alias=AliasChoices("AIPASTA_JWT_ISSUER")
    )
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias=AliasChoices("AIPASTA_KEY_CACHE_SECONDS"),
        description="How long a verified API key is trusted before it is looked up again.",
    )

    # Input limits.
    max_content_chars: int = Field(
        default=100_000, ge=1, validation_alias=AliasChoices("AIPASTA_MAX_CONTENT_CHARS")
    )
    max_attachments: int = Field(
        default=10, ge=0, validation_alias=AliasChoices("AIPASTA_MAX_ATTACHMENTS")
    )
    max_data_url_bytes: int = Field(
        default=5 * 1024 * 1024, ge=0, validation_alias=AliasChoices("AIPASTA_MAX_DATA_URL_BYTES")
    )

    # Protection.
    rate_limit: str = Field(
        default="30/minute",
        validation_alias=AliasChoices("AIPASTA_RATE_LIMIT"),
        description="GraphQL operations per client IP (a `limits` rate string).",
    )
    user_rate_limit: str = Field(
        default="120/minute",
        validation_alias=AliasChoices("AIPASTA_USER_RATE_LIMIT"),
        description="GraphQL operations per signed-in user.",
    )
    ip_flood_limit: str = Field(
        default="600/minute",
        validation_alias=AliasChoices("AIPASTA_IP_FLOOD_LIMIT"),
        description="Operations per client IP, signed in or not, counted before sign-in.",
    )
    max_streams_per_user: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("AIPASTA_MAX_STREAMS_PER_USER")
    )
    rate_limit_storage: str = Field(
        default="memory://",
        validation_alias=AliasChoices("AIPASTA_RATE_LIMIT_STORAGE"),
        description="A `limits` async storage URI, e.g. async+redis://host:6379.",
    )
    rate_limit_fail: FailMode = Field(
        default=FailMode.OPEN,
        validation_alias=AliasChoices("AIPASTA_RATE_LIMIT_FAIL"),
        description="open: let requests through while the store is down; closed: refuse them.",
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias=AliasChoices("AIPASTA_TRUSTED_PROXIES"),
        description="Comma-separated IPs or networks whose X-Forwarded-For is believed.",
    )
    allowed_hosts: str = Field(
        default="",
        validation_alias=AliasChoices("AIPASTA_ALLOWED_HOSTS"),
        description=(
            "Comma-separated `Host` names the server answers to (`*.example.com` patterns, "
            "`*` for any); unset: AIPASTA_HOST and the loopback names."
        ),
    )
    cors_origins: str = Field(
        default="http://localhost:3000,http://127.0.0.1:3000",
        validation_alias=AliasChoices("AIPASTA_CORS_ORIGINS"),
        description="Comma-separated browser origins allowed over HTTP and websockets.",
    )
    max_depth: int = Field(
        default=15,
        ge=1,
        validation_alias=AliasChoices("AIPASTA_MAX_DEPTH"),
        description="Levels below a root field, introspection included (its standard query: 14).",
    )
    max_aliases: int = Field(default=30, ge=0, validation_alias=AliasChoices("AIPASTA_MAX_ALIASES"))
    max_tokens: int = Field(
        default=2000, ge=10, validation_alias=AliasChoices("AIPASTA_MAX_TOKENS")
    )
    max_query_cost: int = Field(
        default=60_000,
        ge=1,
        validation_alias=AliasChoices("AIPASTA_MAX_QUERY_COST"),
        description=(
            "Estimated fields one operation may resolve: a list counts its `first`/`last` "
            "items, or 10 without them."
        ),
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, validation_alias=AliasChoices("AIPASTA_MAX_BODY_BYTES")
    )
    max_json_depth: int = Field(
        default=64,
        ge=2,
        validation_alias=AliasChoices("AIPASTA_MAX_JSON_DEPTH"),
        description="Nesting of arrays and objects in a request body or websocket message.",
    )
    operation_timeout: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("AIPASTA_OPERATION_TIMEOUT"),
        description="Seconds a query or mutation may run (streams use the chat timeouts).",
    )
    shutdown_timeout: int = Field(
        default=15,
        ge=1,
        validation_alias=AliasChoices("AIPASTA_SHUTDOWN_TIMEOUT"),
        description="Seconds a stopping server waits for open requests and websockets "
        "(a client that stopped reading included) before it closes them.",
    )
    ws_init_timeout: float = Field(
        default=5.0, gt=0, validation_alias=AliasChoices("AIPASTA_WS_INIT_TIMEOUT")
    )
    ws_max_operations: int = Field(
        default=20, ge=1, validation_alias=AliasChoices("AIPASTA_WS_MAX_OPERATIONS")
    )
    introspection: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("AIPASTA_INTROSPECTION"),
        description="Allow schema introspection; defaults to on in development only.",
    )
    field_suggestions: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("AIPASTA_FIELD_SUGGESTIONS"),
        description="'Did you mean' hints in errors; defaults to on in development only.",
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

    @field_validator("providers")
    @classmethod
    def _unique_names(cls, value: list[ExtraProvider]) -> list[ExtraProvider]:
        names = [p.name for p in value]
        if len(names) != len(set(names)):
            raise ValueError("provider names must be unique")
        return value

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> Settings:
        if self.auth is AuthMode.OFF and not self.host_is_loopback:
            raise ValueError(
                f"AIPASTA_AUTH=off is only allowed when AIPASTA_HOST is a loopback address "
                f"(got {self.host}): anyone who can reach the server would act as one user"
            )
        if self.auth is AuthMode.OFF and ANY_HOST in _items(self.allowed_hosts):
            raise ValueError(
                "AIPASTA_AUTH=off cannot be combined with AIPASTA_ALLOWED_HOSTS=*: a web page "
                "could rebind its own name to this server and act as the local admin"
            )
        return self

    def provider_key(self, provider: ExtraProvider) -> SecretStr | None:
        """The key an extra provider names in `api_key_env`, read like every other setting.

        The key itself never sits in AIPASTA_PROVIDERS: that list gets logged and shared.
        """
        if provider.api_key_env is None:
            return None
        value = os.environ.get(provider.api_key_env)
        if value is None:
            for env_file in reversed(ENV_FILES):
                value = dotenv_values(env_file).get(provider.api_key_env)
                if value is not None:
                    break
        return SecretStr(value) if value else None

    @property
    def token_secret(self) -> SecretStr | None:
        """The HS256 secret for plain JWTs: AIPASTA_JWT_SECRET, else NEXTAUTH_SECRET."""
        return self.jwt_secret or self.nextauth_secret

    @field_validator("rate_limit", "user_rate_limit", "ip_flood_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse_many(value)
        except ValueError:
            raise ValueError("must be a rate such as 30/minute or 1000/hour") from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in _items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: str) -> str:
        for item in _items(value):
            name = item.removeprefix("*.")
            if item != ANY_HOST and not (_HOST_NAME.fullmatch(name) or _is_ipv6(name)):
                raise ValueError(
                    f"{item!r} is not a host name, an IP address, a *.domain pattern or *"
                )
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        try:
            normalize_allowed_origins(item.rstrip("/") for item in _items(value))
        except ValueError:
            raise ValueError(
                "each entry must be an origin such as https://chat.example.com "
                "(scheme, host and optional port, no path) or *"
            ) from None
        return value

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(item, strict=False) for item in _items(self.trusted_proxies)]

    @property
    def allowed_origins(self) -> list[str]:
        return [item.rstrip("/") for item in _items(self.cors_origins)]

    @property
    def trusted_hosts(self) -> list[str]:
        """The `Host` header values (IPv6 in brackets, as the header writes it) answered;
        `*` means any. Unset, a server bound to every interface answers any name (it
        cannot know its public ones); otherwise its own host and the loopback names."""
        configured = [_host_pattern(item) for item in _items(self.allowed_hosts)]
        if configured:
            return configured
        if self.host in WILDCARD_BINDS:
            return [ANY_HOST]
        return list(dict.fromkeys([_host_pattern(self.host), *LOOPBACK_HOSTS]))

    @property
    def introspection_enabled(self) -> bool:
        if self.introspection is not None:
            return self.introspection
        return self.env is Environment.DEVELOPMENT

    @property
    def suggestions_enabled(self) -> bool:
        if self.field_suggestions is not None:
            return self.field_suggestions
        return self.env is Environment.DEVELOPMENT

    @property
    def graphiql_enabled(self) -> bool:
        if self.graphiql is not None:
            return self.graphiql
        return self.env is Environment.DEVELOPMENT

    @property
    def provider_configured(self) -> bool:
        """Whether any real provider is set up: a key, or an AIPASTA_PROVIDERS entry."""
        keys = (self.openrouter_api_key, self.huggingface_api_key)
        return bool(self.providers) or any(key and key.get_secret_value() for key in keys)

    @property
    def simulator_enabled(self) -> bool:
        """Never in production unless asked for by name."""
        if self.simulator is not SimulatorMode.AUTO:
            return self.simulator is SimulatorMode.ON
        return self.env is Environment.DEVELOPMENT and not self.provider_configured

    @property
    def host_is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _items(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _is_ipv6(value: str) -> bool:
    try:
        return ipaddress.ip_address(value.removeprefix("[").removesuffix("]")).version == 6
    except ValueError:
        return False


def _host_pattern(value: str) -> str:
    """A host as the `Host` header spells it: lower case, an IPv6 address in brackets."""
    value = value.lower()
    if _is_ipv6(value) and not value.startswith("["):
        return f"[{value}]"
    return value


class SettingsError(Exception):
    """Settings could not be built; the message names the variable and what is wrong."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings once, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None
    except PydanticSettingsError as exc:
        # Raised when a list-valued variable is not JSON; its message names the field.
        raise SettingsError(_undecodable(str(exc))) from None


def _undecodable(message: str) -> str:
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if f'"{name}"' in message and isinstance(alias, AliasChoices):
            return f"invalid setting {alias.choices[0]}: not valid JSON"
    return "invalid setting: a value could not be decoded"


def describe_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = _variable_name(error.get("loc", ()))
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        lines.append(f"invalid setting {name}: {message}")
    return "; ".join(lines)


def _variable_name(loc: tuple[int | str, ...]) -> str:
    if not loc:
        return "AIPASTA_AUTH"  # the only check across fields
    field_name = str(loc[0])
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field_name.upper()
