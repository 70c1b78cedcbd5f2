"""Every setting the gateway reads, in one pydantic-settings class.

Settings are built once by the CLI (or a test) and passed down; nothing reads the
environment anywhere else. Order of precedence: real environment variables, then
`.env.local`, then `.env` (the seed frontend keeps its keys in `.env.local`).

This module is a leaf: it imports nothing from the project, so any layer may use it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any, get_args

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
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
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

# Every setting's variable starts with this, but for the seed's own names.
ENV_PREFIX = "AIPASTA_"
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
    """The gateway's configuration. Secrets are SecretStr and never printed.

    A field `name` is read from `AIPASTA_<NAME>`; only the seed's own names (and one former
    name) are spelled out as aliases. Every field has a description: `aipasta settings`,
    `.env.example` and the README's settings table are made from them.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=ENV_FILES,
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Seed names, unchanged.
    openrouter_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="OPENROUTER_API_KEY",
        description="OpenRouter key (the catalog works without one; health reports "
        "`not_configured`).",
    )
    huggingface_api_key: SecretStr | None = Field(
        default=None, validation_alias="HUGGINGFACE_API_KEY", description="Hugging Face token."
    )
    mongodb_uri: SecretStr | None = Field(
        default=None,
        validation_alias="MONGODB_URI",
        description="MongoDB / Atlas URI; unset means the embedded database under "
        "AIPASTA_DATA_DIR.",
    )
    nextauth_secret: SecretStr | None = Field(
        default=None,
        validation_alias="NEXTAUTH_SECRET",
        description="The frontend's NextAuth secret: its session tokens are accepted, and it "
        "signs JWTs when AIPASTA_JWT_SECRET is unset.",
    )
    openrouter_base_url: str = Field(
        default=DEFAULT_OPENROUTER_BASE_URL,
        validation_alias="OPENROUTER_BASE_URL",
        description="OpenRouter API base (a proxy, a simulator or a local fake may stand in).",
    )
    huggingface_base_url: str = Field(
        default=DEFAULT_HUGGINGFACE_BASE_URL,
        validation_alias="HUGGINGFACE_BASE_URL",
        description="Hugging Face router base.",
    )

    # Server.
    host: str = Field(default="127.0.0.1", description="Interface to bind.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port to listen on.")
    data_dir: Path = Field(
        default=Path(".aipasta"),
        description="Data folder: the embedded database (under `db/`) and the first admin "
        "key's file.",
    )
    env: Environment = Field(
        default=Environment.DEVELOPMENT, description="`development` or `production`."
    )
    log_level: LogLevel = Field(
        default=LogLevel.INFO, description="`DEBUG`, `INFO`, `WARNING` or `ERROR` (any case)."
    )
    log_format: LogFormat = Field(
        default=LogFormat.TEXT,
        description="`text` (one line per record) or `json` (one JSON object per line), "
        "for the server's and uvicorn's logs alike.",
    )
    log_content: bool = Field(
        default=False,
        description="Also log each operation's variables (message contents): debugging only.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="When set, GET /metrics needs `Authorization: Bearer <token>`.",
    )

    # Catalog cache.
    models_ttl_seconds: int = Field(
        default=1800, ge=1, description="How long a provider's model list is fresh."
    )
    models_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="After a failed refresh, how long to serve the stale list before retrying.",
    )
    models_fetch_timeout: float = Field(
        default=10.0,
        gt=0,
        # AIPASTA_CATALOG_TIMEOUT is its former name.
        validation_alias=AliasChoices("AIPASTA_MODELS_FETCH_TIMEOUT", "AIPASTA_CATALOG_TIMEOUT"),
        description="Seconds for one model-list request (formerly AIPASTA_CATALOG_TIMEOUT); "
        "a refresh round, retries included, gets three times this.",
    )
    models_cold_start_wait: float = Field(
        default=2.0,
        ge=0,
        description="Before the first lists are in, how long a query waits for them before "
        "answering with what is there.",
    )
    answer_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="Memory (16 MiB) for the serialized answers of public catalog queries "
        "(`models`, `model`, `modelCatalog` lists), kept per query, variables and catalog "
        "version; 0 turns the answer cache off.",
    )

    # Upstream HTTP (model lists; chat has its own timeouts).
    upstream_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to connect to a provider for its model list."
    )
    upstream_pool_size: int = Field(
        default=2000,
        ge=1,
        description="Most upstream connections open at once, all providers together (the "
        "process needs about twice as many open files).",
    )
    upstream_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a failed model-list request."
    )
    upstream_backoff_seconds: float = Field(
        default=0.5, ge=0, description="First model-list retry delay (doubles each time)."
    )
    upstream_max_retry_after: float = Field(
        default=10.0, ge=0, description="Cap on an upstream's `Retry-After` for model lists."
    )
    app_url: str = Field(
        default="http://localhost:3000", description="Sent to OpenRouter as `HTTP-Referer`."
    )
    app_title: str = Field(default="AI Pasta", description="Sent to OpenRouter as `X-Title`.")

    # Database.
    db_name: str = Field(
        default="aipasta",
        pattern=r"^[A-Za-z0-9_-]{1,63}$",
        description="Database name when the URI names none.",
    )
    db_timeout_ms: int = Field(
        default=2000, ge=100, description="MongoDB server selection / connect timeout."
    )
    db_operation_timeout_ms: int = Field(
        default=5000, ge=100, description="MongoDB per-operation timeout."
    )
    db_retry_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Delay between reconnection attempts (and retries of buffered history writes).",
    )
    embedded_start_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the embedded database to start."
    )
    embedded_cache_mb: int = Field(
        default=32,
        ge=1,
        le=1_048_576,
        description="The embedded database's cache in MiB (most of its memory); set by the "
        "process that starts it.",
    )
    embedded_check_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the server checks that the embedded database still runs.",
    )
    embedded_restart_backoff: float = Field(
        default=0.5,
        gt=0,
        description="First wait before starting the embedded database again (doubles).",
    )
    embedded_restart_max_backoff: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between two starts of the embedded database.",
    )

    # Chat.
    providers: list[ExtraProvider] = Field(
        default_factory=list,
        description="JSON list of extra OpenAI-compatible providers (`name`, `base_url`, "
        "optional `api_key_env` and prices).",
    )
    simulator: SimulatorMode = Field(
        default=SimulatorMode.AUTO,
        description="The built-in simulated provider: `auto` (on in development when no "
        "provider is configured), `on` (also in production) or `off`.",
    )
    simulator_token_delay_ms: float = Field(
        default=20.0,
        ge=0,
        le=10_000,
        description="The built-in simulator's pause before each token it streams.",
    )
    chat_connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds to connect for a chat request."
    )
    chat_first_token_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for the first token."
    )
    chat_idle_timeout: float = Field(
        default=60.0, gt=0, description="Longest gap in seconds between two chunks."
    )
    chat_total_timeout: float = Field(
        default=600.0, gt=0, description="Longest chat request in seconds."
    )
    chat_retry_backoff: float = Field(
        default=0.5,
        ge=0,
        description="Wait before retrying the same model when no `Retry-After` was sent.",
    )
    chat_retry_max_wait: float = Field(
        default=5.0,
        ge=0,
        description="Cap on an upstream's `Retry-After` before retrying the same model.",
    )
    stream_coalesce_ms: float = Field(
        default=30.0, ge=0, description="Window in which stream deltas are merged (0: never)."
    )
    stream_buffer_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        description="Answer text read ahead of a slow client per stream; the upstream read "
        "pauses beyond it.",
    )
    stream_send_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a streaming client (websocket or SSE) may take to accept a "
        "message before it is disconnected.",
    )
    max_compare: int = Field(
        default=6, ge=1, le=20, description="Most models in one `compare` / `compareStream`."
    )

    # Identity.
    auth: AuthMode = Field(
        default=AuthMode.REQUIRED,
        description="`required`, or `off` (every request is user `local`; loopback hosts only).",
    )
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 secret for bearer JWTs; falls back to NEXTAUTH_SECRET.",
    )
    jwt_audience: str | None = Field(default=None, description="Required `aud` of JWTs.")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of JWTs.")
    key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a verified API key is trusted before it is looked up again.",
    )

    # Input limits.
    max_content_chars: int = Field(
        default=100_000, ge=1, description="Longest message content, in characters."
    )
    max_attachments: int = Field(default=10, ge=0, description="Attachments per message.")
    max_data_url_bytes: int = Field(
        default=5 * 1024 * 1024, ge=0, description="Largest `data:` URL attachment (5 MiB)."
    )

    # Protection.
    rate_limit: str = Field(
        default="30/minute",
        description="Anonymous GraphQL operations per client IP (a `limits` rate string).",
    )
    user_rate_limit: str = Field(
        default="120/minute", description="GraphQL operations per signed-in user."
    )
    ip_flood_limit: str = Field(
        default="600/minute",
        description="Operations per client IP, signed in or not, counted before sign-in.",
    )
    max_streams_per_user: int = Field(
        default=10,
        ge=1,
        description="Streams (`chatStream`, `compareStream`) open at once per user.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="A `limits` async storage URI for the rate-limit counters, e.g. "
        "`redis://host:6379` to share them between processes.",
    )
    rate_limit_fail: FailMode = Field(
        default=FailMode.OPEN,
        description="`open`: let requests through while the store is down; `closed`: refuse them.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs or networks whose X-Forwarded-For is believed.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Comma-separated `Host` names the server answers to (`*.example.com` "
        "patterns, `*` for any); unset: AIPASTA_HOST and the loopback names (any name when "
        "bound to every interface).",
    )
    cors_origins: str = Field(
        default="http://localhost:3000,http://127.0.0.1:3000",
        description="Comma-separated browser origins allowed over HTTP and websockets.",
    )
    max_depth: int = Field(
        default=15,
        ge=1,
        description="Levels below a root field, introspection included (its standard query: 14).",
    )
    max_aliases: int = Field(
        default=30, ge=0, description="Aliases per query (a fragment counts once per spread)."
    )
    max_tokens: int = Field(default=2000, ge=10, description="Tokens per query.")
    max_query_cost: int = Field(
        default=60_000,
        ge=1,
        description="Estimated fields one operation may resolve: a list counts its "
        "`first`/`last` items, or 10 without them.",
    )
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="Largest request body (8 MiB)."
    )
    max_json_depth: int = Field(
        default=64,
        ge=2,
        description="Nesting of arrays and objects in a request body or websocket message.",
    )
    operation_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a query or mutation may run (streams use the chat timeouts).",
    )
    shutdown_timeout: int = Field(
        default=15,
        ge=1,
        description="Seconds a stopping server waits for open requests and websockets "
        "(a client that stopped reading included) before it closes them.",
    )
    ws_init_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a websocket has to send `connection_init`."
    )
    ws_max_operations: int = Field(
        default=20, ge=1, description="Operations open at once on one websocket."
    )
    introspection: bool | None = Field(
        default=None,
        description="Allow schema introspection; unset: on in development only.",
    )
    field_suggestions: bool | None = Field(
        default=None,
        description="'Did you mean' hints in errors; unset: on in development only.",
    )

    # GraphQL.
    graphiql: bool | None = Field(
        default=None,
        description="Serve GraphiQL at `/graphql` in a browser (its assets under "
        "`/graphiql/static/`); unset: on in development only.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides (the CLI's, a test's) are given by their environment names too.
        by_name = {
            _field_by_env_name().get(key.upper(), key): v for key, v in init_settings().items()
        }
        overrides = InitSettingsSource(settings_cls, by_name)
        return overrides, env_settings, dotenv_settings, file_secret_settings

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

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
    for name in Settings.model_fields:
        if f'"{name}"' in message:
            return f"invalid setting {env_name(name)}: not valid JSON"
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
    name = str(loc[0])  # a field's name, or the alias it was given by
    return env_name(name) if name in Settings.model_fields else name.upper()


def env_name(field_name: str) -> str:
    """The environment variable a settings field is read from: AIPASTA_<NAME>, or the
    seed's own name (the first, for a field that also takes a former name)."""
    alias = Settings.model_fields[field_name].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{ENV_PREFIX}{field_name.upper()}"


@cache
def _field_by_env_name() -> dict[str, str]:
    """Fields read under the prefix, by their environment name (an alias names itself)."""
    return {
        env_name(name): name
        for name, field in Settings.model_fields.items()
        if field.validation_alias is None
    }


@dataclass(frozen=True)
class SettingDoc:
    """One setting as `aipasta settings`, `.env.example` and the README list it."""

    env_name: str
    default: str  # as the environment spells it; "" when unset
    secret: bool
    description: str


def setting_docs() -> list[SettingDoc]:
    """Every setting, in the order the model declares them."""
    return [
        SettingDoc(
            env_name=env_name(name),
            default=""
            if _is_secret(field.annotation)
            else _env_text(field.get_default(call_default_factory=True)),
            secret=_is_secret(field.annotation),
            description=field.description or "",
        )
        for name, field in Settings.model_fields.items()
    ]


def _is_secret(annotation: object) -> bool:
    return annotation is SecretStr or SecretStr in get_args(annotation)


def _env_text(value: object) -> str:
    """A default written as an environment value would be."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)
