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
      the total adds `pricing.per_request`, which is neither input nor output.
    - Otherwise the cost is unknown: zeros, `known` False.
    """
    with localcontext(prec=_EXACT):
        if reported is not None:
            return _split(reported, prompt_tokens, completion_tokens, pricing)
        if not pricing.known:
            return UNKNOWN_COST
        input_cost, output_cost = _catalog_amounts(prompt_tokens, completion_tokens, pricing)
        total = input_cost + output_cost + (pricing.per_request or ZERO)
        return Cost(input_cost, output_cost, total, known=True)


def _catalog_amounts(
    prompt_tokens: int, completion_tokens: int, pricing: Pricing
) -> tuple[Decimal, Decimal]:
    assert pricing.prompt_per_million is not None
    assert pricing.completion_per_million is not None
    return (
        pricing.prompt_per_million * prompt_tokens / MILLION,
        pricing.completion_per_million * completion_tokens / MILLION,
    )


def _split(reported: Decimal, prompt_tokens: int, completion_tokens: int, pricing: Pricing) -> Cost:
    input_weight, output_weight = Decimal(prompt_tokens), Decimal(completion_tokens)
    if pricing.known:
        by_price = _catalog_amounts(prompt_tokens, completion_tokens, pricing)
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
