"""Request cost from token counts and catalog prices, exactly, and token estimates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from providers.model import UNKNOWN_PRICE, Pricing
from providers.pricing import Cost, cost_of, estimate_prompt_tokens, estimate_tokens

D = Decimal
DEEPSEEK = Pricing(prompt_per_million=D("0.028"), completion_per_million=D("0.054"))
SONNET = Pricing(prompt_per_million=D("3"), completion_per_million=D("15"))


def test_known_price_is_tokens_times_price_per_million_exactly() -> None:
    cost = cost_of(prompt_tokens=1234, completion_tokens=567, pricing=DEEPSEEK)
    assert cost == Cost(D("0.000034552"), D("0.000030618"), D("0.00006517"), known=True)


def test_no_binary_rounding_creeps_in() -> None:
    tiny = Pricing(prompt_per_million=D("0.1"), completion_per_million=D("0.2"))
    cost = cost_of(prompt_tokens=3, completion_tokens=0, pricing=tiny)
    # Floats would give 3.0000000000000004e-07.
    assert cost.total_cost == D("0.0000003")


def test_a_million_tokens_cost_the_listed_price() -> None:
    cost = cost_of(prompt_tokens=1_000_000, completion_tokens=1_000_000, pricing=DEEPSEEK)
    assert (cost.input_cost, cost.output_cost, cost.total_cost) == (
        D("0.028"),
        D("0.054"),
        D("0.082"),
    )


def test_per_request_price_is_added_to_the_total_only() -> None:
    priced = Pricing(
        prompt_per_million=D("3"), completion_per_million=D("15"), per_request=D("0.005")
    )
    cost = cost_of(prompt_tokens=1000, completion_tokens=200, pricing=priced)
    assert cost == Cost(D("0.003"), D("0.003"), D("0.011"), known=True)


def test_free_model_costs_zero_and_is_known() -> None:
    free = Pricing(prompt_per_million=D(0), completion_per_million=D(0))
    assert cost_of(prompt_tokens=500, completion_tokens=500, pricing=free) == Cost(
        D(0), D(0), D(0), known=True
    )


def test_unknown_price_without_a_reported_cost_is_unknown_and_zero() -> None:
    cost = cost_of(prompt_tokens=500, completion_tokens=500, pricing=UNKNOWN_PRICE)
    assert cost == Cost(D(0), D(0), D(0), known=False)
    half_priced = Pricing(prompt_per_million=D(1))
    assert not cost_of(prompt_tokens=1, completion_tokens=1, pricing=half_priced).known


def test_reported_cost_wins_over_the_catalog_split_by_catalog_price() -> None:
    # The catalog says 0.003 + 0.003 = 0.006; OpenRouter charged 0.0066.
    cost = cost_of(prompt_tokens=1000, completion_tokens=200, pricing=SONNET, reported=D("0.0066"))
    assert cost.known
    assert cost.total_cost == D("0.0066")
    assert (cost.input_cost, cost.output_cost) == (D("0.0033"), D("0.0033"))


def test_reported_cost_with_unknown_price_is_known_and_split_by_tokens() -> None:
    cost = cost_of(
        prompt_tokens=300, completion_tokens=100, pricing=UNKNOWN_PRICE, reported=D("0.001")
    )
    assert cost == Cost(D("0.00075"), D("0.00025"), D("0.001"), known=True)


def test_reported_cost_on_a_free_catalog_price_is_split_by_tokens() -> None:
    free = Pricing(prompt_per_million=D(0), completion_per_million=D(0))
    cost = cost_of(prompt_tokens=1, completion_tokens=3, pricing=free, reported=D("0.0004"))
    assert (cost.input_cost, cost.output_cost, cost.total_cost) == (
        D("0.0001"),
        D("0.0003"),
        D("0.0004"),
    )


def test_an_uneven_split_still_adds_up_to_the_reported_total() -> None:
    cost = cost_of(
        prompt_tokens=1, completion_tokens=2, pricing=UNKNOWN_PRICE, reported=D("0.0001")
    )
    assert cost.input_cost == D("0.000033333333333")
    assert cost.input_cost + cost.output_cost == D("0.0001") == cost.total_cost


def test_reported_cost_without_tokens_is_all_input() -> None:
    cost = cost_of(prompt_tokens=0, completion_tokens=0, pricing=SONNET, reported=D("0.002"))
    assert cost == Cost(D("0.002"), D(0), D("0.002"), known=True)


def test_reported_zero_is_a_known_zero() -> None:
    cost = cost_of(prompt_tokens=10, completion_tokens=10, pricing=UNKNOWN_PRICE, reported=D(0))
    assert cost == Cost(D(0), D(0), D(0), known=True)


def test_token_estimate_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_prompt_estimate_counts_text_and_a_per_message_overhead() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},  # 9 chars -> 3
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "text", "text": " this?"},
            ],  # 16 chars of text -> 4
        },
        {"role": "assistant", "content": None},  # a tool call: overhead only
    ]
    assert estimate_prompt_tokens(messages) == (4 + 3) + (4 + 4) + 4
    assert estimate_prompt_tokens([]) == 0


def test_prompt_estimate_grows_with_the_conversation() -> None:
    short = [{"role": "user", "content": "hi"}]
    longer = [*short, {"role": "assistant", "content": "hello " * 50}]
    assert estimate_prompt_tokens(longer) > estimate_prompt_tokens(short) > 0
