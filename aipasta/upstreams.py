"""Building the provider clients from settings: their HTTP session, catalog sources and
chat clients."""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial

import aiohttp
from pydantic import SecretStr

from aipasta import __version__
from aipasta.settings import Settings
from providers.chat import ChatProvider
from providers.fetch import RetryPolicy
from providers.huggingface import NAME as HUGGINGFACE
from providers.huggingface import parse_huggingface_models
from providers.listing import ModelListing, Parse, bearer_headers
from providers.model import Pricing
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.openai_models import parse_openai_models
from providers.openrouter import LISTING_QUERY as OPENROUTER_LISTING_QUERY
from providers.openrouter import NAME as OPENROUTER
from providers.openrouter import openrouter_headers, parse_openrouter_models
from providers.payload import Dialect
from providers.pool import pooled_session
from providers.simulator import NAME as SIMULATOR
from providers.simulator import RunningSimulator, SimulatorConfig, start_simulator
from providers.source import ModelSource

log = logging.getLogger(__name__)


def http_session(settings: Settings) -> aiohttp.ClientSession:
    """The one session every provider client shares (call it with the loop running)."""
    pool_size = settings.upstream_pool_size
    # Each stream holds a client connection as well as its upstream one.
    needed = 2 * pool_size
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        log.warning(
            "AIPASTA_UPSTREAM_POOL_SIZE=%d needs about %d open files at full load but this "
            "process may open %d (ulimit -n): raise that limit or lower the pool size",
            pool_size,
            needed,
            soft,
        )
    return pooled_session(pool_size=pool_size, headers={"User-Agent": f"aipasta/{__version__}"})


@dataclass(frozen=True)
class _Upstream:
    """One provider as both its model listing and its chat client reach it."""

    name: str
    base_url: str
    api_key: SecretStr | None
    parse: Parse
    # Sent with every request besides the key (OpenRouter's attribution headers).
    headers: Mapping[str, str] = field(default_factory=dict)
    # A listed server is set up without a key (local ones usually need none).
    listed: bool = False
    # How its chat requests ask for reasoning and routing (see providers.payload).
    dialect: Dialect = Dialect.OPENAI
    # Query of its `GET /models` (OpenRouter lists text-output models only without it).
    listing_query: Mapping[str, str] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return self.listed or _has(self.api_key)


def _upstreams(settings: Settings, simulator: RunningSimulator | None) -> list[_Upstream]:
    upstreams = [
        # OpenRouter lists its models without a key too.
        _Upstream(
            name=OPENROUTER,
            base_url=settings.openrouter_base_url,
            api_key=settings.openrouter_api_key,
            parse=parse_openrouter_models,
            headers=openrouter_headers(
                None, app_url=settings.app_url, app_title=settings.app_title
            ),
            dialect=Dialect.OPENROUTER,
            listing_query=OPENROUTER_LISTING_QUERY,
        ),
        _Upstream(
            name=HUGGINGFACE,
            base_url=settings.huggingface_base_url,
            api_key=settings.huggingface_api_key,
            parse=parse_huggingface_models,
            dialect=Dialect.HUGGINGFACE,
        ),
    ]
    for extra in settings.providers:
        pricing = Pricing(
            prompt_per_million=extra.prompt_price_per_million,
            completion_per_million=extra.completion_price_per_million,
        )
        parse = partial(parse_openai_models, extra.name, pricing=pricing)
        key = settings.provider_key(extra)
        upstreams.append(_Upstream(extra.name, extra.base_url, key, parse, listed=True))
    if simulator is not None:
        parse = partial(parse_openrouter_models, provider=SIMULATOR)
        # The simulator stands in for OpenRouter and speaks its dialect.
        upstreams.append(
            _Upstream(
                SIMULATOR,
                simulator.base_url,
                None,
                parse,
                listed=True,
                dialect=Dialect.OPENROUTER,
                listing_query=OPENROUTER_LISTING_QUERY,
            )
        )
    return upstreams


def _has(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value())


def model_sources(
    settings: Settings,
    http: aiohttp.ClientSession,
    simulator: RunningSimulator | None = None,
) -> list[ModelSource]:
    policy = RetryPolicy(
        retries=settings.upstream_retries,
        backoff=settings.upstream_backoff_seconds,
        max_retry_after=settings.upstream_max_retry_after,
        timeout=settings.models_fetch_timeout,
        connect_timeout=settings.upstream_connect_timeout,
    )
    return [
        ModelListing(
            http,
            name=upstream.name,
            base_url=upstream.base_url,
            headers={**upstream.headers, **bearer_headers(upstream.api_key)},
            policy=policy,
            parse=upstream.parse,
            configured=upstream.configured,
            query=upstream.listing_query,
        )
        for upstream in _upstreams(settings, simulator)
    ]


def chat_providers(
    settings: Settings,
    http: aiohttp.ClientSession,
    simulator: RunningSimulator | None = None,
) -> dict[str, ChatProvider]:
    timeouts = ChatTimeouts(
        connect=settings.chat_connect_timeout,
        first_token=settings.chat_first_token_timeout,
        idle=settings.chat_idle_timeout,
        total=settings.chat_total_timeout,
    )
    return {
        upstream.name: OpenAICompatibleClient(
            http,
            name=upstream.name,
            base_url=upstream.base_url,
            api_key=upstream.api_key,
            extra_headers=upstream.headers,
            timeouts=timeouts,
            dialect=upstream.dialect,
        )
        for upstream in _upstreams(settings, simulator)
    }


async def builtin_simulator(settings: Settings) -> RunningSimulator | None:
    """The simulated upstream on a loopback port, when settings enable it."""
    if not settings.simulator_enabled:
        return None
    delay = settings.simulator_token_delay_ms / 1000
    simulator = await start_simulator(SimulatorConfig(token_delay=delay))
    log.warning(
        "serving the built-in upstream SIMULATOR as provider `simulator` (models "
        "`simulator:sim/...`): its answers are generated words, not a language model. "
        "For real models set OPENROUTER_API_KEY or HUGGINGFACE_API_KEY (or AIPASTA_PROVIDERS) "
        "in .env.local; AIPASTA_SIMULATOR=off turns the simulator off"
    )
    return simulator
