"""Building the provider clients from settings: their HTTP session, catalog sources and
chat clients."""

from __future__ import annotations

import logging
import resource
from functools import partial

import aiohttp
from pydantic import SecretStr

from aipasta import __version__
from aipasta.settings import ExtraProvider, Settings
from providers.chat import ChatProvider
from providers.fetch import RetryPolicy
from providers.huggingface import NAME as HUGGINGFACE
from providers.huggingface import parse_huggingface_models
from providers.listing import ModelListing, bearer_headers
from providers.model import Pricing
from providers.openai_compat import ChatTimeouts, OpenAICompatibleClient
from providers.openai_models import parse_openai_models
from providers.openrouter import NAME as OPENROUTER
from providers.openrouter import openrouter_headers, parse_openrouter_models
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


def _retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        retries=settings.upstream_retries,
        backoff=settings.upstream_backoff_seconds,
        max_retry_after=settings.upstream_max_retry_after,
        timeout=settings.models_fetch_timeout,
        connect_timeout=settings.upstream_connect_timeout,
    )


def _openrouter_headers(settings: Settings) -> dict[str, str]:
    return openrouter_headers(
        settings.openrouter_api_key, app_url=settings.app_url, app_title=settings.app_title
    )


def _extra_pricing(extra: ExtraProvider) -> Pricing:
    return Pricing(
        prompt_per_million=extra.prompt_price_per_million,
        completion_per_million=extra.completion_price_per_million,
    )


def model_sources(
    settings: Settings,
    http: aiohttp.ClientSession,
    simulator: RunningSimulator | None = None,
) -> list[ModelSource]:
    policy = _retry_policy(settings)
    sources: list[ModelSource] = [
        # OpenRouter lists its models without a key too.
        ModelListing(
            http,
            name=OPENROUTER,
            base_url=settings.openrouter_base_url,
            headers=_openrouter_headers(settings),
            policy=policy,
            parse=parse_openrouter_models,
            configured=_has(settings.openrouter_api_key),
        ),
        ModelListing(
            http,
            name=HUGGINGFACE,
            base_url=settings.huggingface_base_url,
            headers=bearer_headers(settings.huggingface_api_key),
            policy=policy,
            parse=parse_huggingface_models,
            configured=_has(settings.huggingface_api_key),
        ),
    ]
    for extra in settings.providers:
        sources.append(
            ModelListing(
                http,
                name=extra.name,
                base_url=extra.base_url,
                headers=bearer_headers(settings.provider_key(extra)),
                policy=policy,
                parse=partial(parse_openai_models, extra.name, pricing=_extra_pricing(extra)),
                # Local servers usually need no key: being listed is configuration enough.
                configured=True,
            )
        )
    if simulator is not None:
        sources.append(
            ModelListing(
                http,
                name=SIMULATOR,
                base_url=simulator.base_url,
                headers=bearer_headers(None),
                policy=policy,
                parse=partial(parse_openrouter_models, provider=SIMULATOR),
                configured=True,
            )
        )
    return sources


def _has(key: SecretStr | None) -> bool:
    return key is not None and bool(key.get_secret_value())


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
    openrouter_extra = _openrouter_headers(settings)
    openrouter_extra.pop("Authorization", None)
    providers: dict[str, ChatProvider] = {
        OPENROUTER: OpenAICompatibleClient(
            http,
            name=OPENROUTER,
            base_url=settings.openrouter_base_url,
            api_key=settings.openrouter_api_key,
            extra_headers=openrouter_extra,
            timeouts=timeouts,
        ),
        HUGGINGFACE: OpenAICompatibleClient(
            http,
            name=HUGGINGFACE,
            base_url=settings.huggingface_base_url,
            api_key=settings.huggingface_api_key,
            timeouts=timeouts,
        ),
    }
    for extra in settings.providers:
        providers[extra.name] = OpenAICompatibleClient(
            http,
            name=extra.name,
            base_url=extra.base_url,
            api_key=settings.provider_key(extra),
            timeouts=timeouts,
        )
    if simulator is not None:
        providers[SIMULATOR] = OpenAICompatibleClient(
            http, name=SIMULATOR, base_url=simulator.base_url, api_key=None, timeouts=timeouts
        )
    return providers


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
