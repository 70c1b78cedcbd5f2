"""Reading upstream prices and turning token counts into money, exactly."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

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
