"""Money in MongoDB: USD amounts as Decimal128, so sums stay exact."""

from __future__ import annotations

from decimal import Context, Decimal

from bson import Decimal128

# Decimal128 holds 34 significant digits; a longer amount is rounded rather than refused.
_DECIMAL128_DIGITS = Context(prec=34)


def decimal128(amount: Decimal) -> Decimal128:
    return Decimal128(_DECIMAL128_DIGITS.create_decimal(amount))
