"""Reading upstream prices and turning token counts into money, exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from providers.chat import content_text
from providers.model import Pricing

MILLION = Decimal(1_000_000)


def parse_amount(value: object) -> Decimal | None:
    """A non-negative finite USD amount, or None when absent, negative or unparseable.

    OpenRouter marks router models (e.g. `openrouter/auto`) with "-1": unknown, not free.
    Floats go through str() so 0.1 stays 0.1 rather than its binary expansion.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float | int):
        value = str(value)
    if not isinstance(value, str):
        return None
    try:
        amount = Decimal(value.strip())
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount


def per_token_to_per_million(value: object) -> Decimal | None:
    amount = parse_amount(value)
    return None if amount is None else (amount * MILLION).normalize()


# ------------------------------------------------------------------ cost of a request

# Enough digits that price x tokens (a few dozen digits at most) is never rounded.
_EXACT = 60
# An input/output split of a reported cost is rounded to 1e-15 USD, far below any
# amount shown, so that output = total - input keeps the two summing to the total exactly.
_SPLIT_QUANTUM = Decimal("1e-15")
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one request cost, in USD. `known` is False when there was nothing to price
    it with; the amounts are then 0."""

    input_cost: Decimal
    output_cost: Decimal
    total_cost: Decimal
    known: bool


UNKNOWN_COST = Cost(ZERO, ZERO, ZERO, known=False)


def cost_of(
    *,
    prompt_tokens: int,
    completion_tokens: int,
    pricing: Pricing,
    reported: Decimal | None = None,
    cached_prompt_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Cost:
    """The cost of a request, exactly.

    - The upstream's own figure (OpenRouter's `usage.cost`) wins when present: it is
      what the account was charged, whatever the catalog says. It is split into input
      and output in proportion to what the catalog prices would charge for each side,
      or, with no usable catalog price, in proportion to the token counts (all of it
      is input when there are no tokens). Either way input + output = total.
    - Otherwise, with a known price: tokens x price per million / 10^6 for each side;
      the total adds `pricing.per_request`, which is neither input nor output. Of the
      prompt tokens, the cached ones cost the cache-read price and the cache writes the
      cache-write price (each the prompt price when the catalog has none); of the
      completion tokens, the reasoning ones cost the reasoning price (else the
      completion price). Counts that do not fit (more cached than prompt tokens) are
      capped at what is left of the prompt or completion.
    - Otherwise the cost is unknown: zeros, `known` False.
    """
    tokens = _Tokens.of(
        prompt_tokens, completion_tokens, cached_prompt_tokens, cache_write_tokens, reasoning_tokens
    )
    with localcontext(prec=_EXACT):
        if reported is not None:
            return _split(reported, tokens, pricing)
        if not pricing.known:
            return UNKNOWN_COST
        input_cost, output_cost = _catalog_amounts(tokens, pricing)
        total = input_cost + output_cost + (pricing.per_request or ZERO)
        return Cost(input_cost, output_cost, total, known=True)


@dataclass(frozen=True, slots=True)
class _Tokens:
    """A request's token counts, split by price: each count is part of no other."""

    prompt: int
    cached: int
    cache_write: int
    completion: int
    reasoning: int

    @classmethod
    def of(
        cls, prompt: int, completion: int, cached: int, cache_write: int, reasoning: int
    ) -> _Tokens:
        prompt, completion = max(prompt, 0), max(completion, 0)
        cached = min(max(cached, 0), prompt)
        cache_write = min(max(cache_write, 0), prompt - cached)
        reasoning = min(max(reasoning, 0), completion)
        return cls(
            prompt=prompt - cached - cache_write,
            cached=cached,
            cache_write=cache_write,
            completion=completion - reasoning,
            reasoning=reasoning,
        )

    @property
    def input(self) -> int:
        return self.prompt + self.cached + self.cache_write

    @property
    def output(self) -> int:
        return self.completion + self.reasoning


def _catalog_amounts(tokens: _Tokens, pricing: Pricing) -> tuple[Decimal, Decimal]:
    prompt = pricing.prompt_per_million
    completion = pricing.completion_per_million
    assert prompt is not None
    assert completion is not None
    cache_read = _or(pricing.cache_read_per_million, prompt)
    cache_write = _or(pricing.cache_write_per_million, prompt)
    reasoning = _or(pricing.reasoning_per_million, completion)
    input_cost = (
        prompt * tokens.prompt + cache_read * tokens.cached + cache_write * tokens.cache_write
    )
    output_cost = completion * tokens.completion + reasoning * tokens.reasoning
    return input_cost / MILLION, output_cost / MILLION


def _or(price: Decimal | None, default: Decimal) -> Decimal:
    return default if price is None else price


def _split(reported: Decimal, tokens: _Tokens, pricing: Pricing) -> Cost:
    input_weight, output_weight = Decimal(tokens.input), Decimal(tokens.output)
    if pricing.known:
        by_price = _catalog_amounts(tokens, pricing)
        if sum(by_price) > 0:
            input_weight, output_weight = by_price
    weights = input_weight + output_weight
    input_cost = (
        reported if weights == 0 else (reported * input_weight / weights).quantize(_SPLIT_QUANTUM)
    )
    return Cost(input_cost, reported - input_cost, reported, known=True)


# ------------------------------------------------------------------ token estimates

CHARS_PER_TOKEN = 4
# Role and separators of each chat message, as OpenAI's own counting guide allows for.
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    """About how many tokens `text` is when the upstream reports no usage.

    One token per 4 characters (rounded up) is the usual rule of thumb for English
    with BPE tokenizers; it is an estimate, and records made from it say so.
    """
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """Estimated prompt tokens of OpenAI-format messages: the text of each message
    (a string, or the `text` of its content parts) plus a small per-message overhead.
    Images and other non-text parts are not counted: their price depends on details
    (size, provider) the gateway does not know.
    """
    return sum(
        MESSAGE_OVERHEAD_TOKENS + estimate_tokens(content_text(m.get("content"))) for m in messages
    )
