"""Cost without the upstream's own figure: cached prompt tokens at the cache-read price,
cache writes at the cache-write price, reasoning tokens at the reasoning price, exactly."""

from __future__ import annotations

from decimal import Decimal

from providers.model import Pricing
from providers.pricing import Cost, cost_of

D = Decimal
# Per million tokens, as Anthropic's Sonnet is priced.
SONNET = Pricing(prompt_per_million=D("3"), completion_per_million=D("15"))
CACHED_SONNET = Pricing(
    prompt_per_million=D("3"),
    completion_per_million=D("15"),
    cache_read_per_million=D("0.3"),
    cache_write_per_million=D("3.75"),
)
REASONER = Pricing(
    prompt_per_million=D("1.1"),
    completion_per_million=D("4.4"),
    cache_read_per_million=D("0.275"),
    reasoning_per_million=D("3.3"),
)


def test_cached_and_cache_write_tokens_at_their_own_prices() -> None:
    cost = cost_of(
        prompt_tokens=10_000,
        completion_tokens=1_000,
        pricing=CACHED_SONNET,
        cached_prompt_tokens=6_000,
        cache_write_tokens=2_000,
    )
    # 2000 x 3 + 6000 x 0.3 + 2000 x 3.75 = 15300 per million; 1000 x 15 = 15000.
    assert cost == Cost(D("0.0153"), D("0.015"), D("0.0303"), known=True)


def test_without_cache_prices_cached_tokens_cost_the_prompt_price() -> None:
    cost = cost_of(
        prompt_tokens=10_000,
        completion_tokens=1_000,
        pricing=SONNET,
        cached_prompt_tokens=6_000,
        cache_write_tokens=2_000,
    )
    assert cost == Cost(D("0.03"), D("0.015"), D("0.045"), known=True)


def test_reasoning_tokens_at_the_reasoning_price_when_the_catalog_has_one() -> None:
    cost = cost_of(
        prompt_tokens=1_234,
        completion_tokens=5_678,
        pricing=REASONER,
        cached_prompt_tokens=1_000,
        reasoning_tokens=4_000,
    )
    # Input: 234 x 1.1 + 1000 x 0.275 = 532.4; output: 1678 x 4.4 + 4000 x 3.3 = 20583.2.
    assert cost == Cost(D("0.0005324"), D("0.0205832"), D("0.0211156"), known=True)


def test_reasoning_tokens_at_the_completion_price_otherwise() -> None:
    cost = cost_of(
        prompt_tokens=0, completion_tokens=1_000, pricing=CACHED_SONNET, reasoning_tokens=700
    )
    assert cost == Cost(D("0"), D("0.015"), D("0.015"), known=True)


def test_per_request_price_is_still_added_to_the_total() -> None:
    priced = Pricing(
        prompt_per_million=D("3"),
        completion_per_million=D("15"),
        per_request=D("0.005"),
        cache_read_per_million=D("0.3"),
    )
    cost = cost_of(
        prompt_tokens=2_000, completion_tokens=0, pricing=priced, cached_prompt_tokens=1_000
    )
    assert cost == Cost(D("0.0033"), D("0"), D("0.0083"), known=True)


def test_the_reported_cost_wins_and_is_split_by_the_new_prices() -> None:
    cost = cost_of(
        prompt_tokens=10_000,
        completion_tokens=1_000,
        pricing=CACHED_SONNET,
        reported=D("0.0606"),
        cached_prompt_tokens=6_000,
        cache_write_tokens=2_000,
    )
    # The catalog would charge 0.0153 + 0.015: the reported 0.0606 splits 2 x that.
    assert cost == Cost(D("0.0306"), D("0.03"), D("0.0606"), known=True)


def test_counts_that_do_not_fit_are_capped() -> None:
    # An upstream claiming more cached than prompt tokens, more reasoning than completion.
    cost = cost_of(
        prompt_tokens=100,
        completion_tokens=10,
        pricing=REASONER,
        cached_prompt_tokens=500,
        cache_write_tokens=50,
        reasoning_tokens=50,
    )
    # 100 x 0.275 = 27.5; 10 x 3.3 = 33 (per million).
    assert cost == Cost(D("0.0000275"), D("0.000033"), D("0.0000605"), known=True)
    negative = cost_of(
        prompt_tokens=100,
        completion_tokens=10,
        pricing=REASONER,
        cached_prompt_tokens=-5,
        reasoning_tokens=-5,
    )
    assert negative == cost_of(prompt_tokens=100, completion_tokens=10, pricing=REASONER)


def test_unknown_price_stays_unknown() -> None:
    cost = cost_of(
        prompt_tokens=100,
        completion_tokens=10,
        pricing=Pricing(cache_read_per_million=D("0.1")),
        cached_prompt_tokens=50,
    )
    assert not cost.known
