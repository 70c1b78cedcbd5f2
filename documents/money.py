"""Money in MongoDB: USD amounts as Decimal128, so sums stay exact."""

from __future__ import annotations

from decimal import Context, Decimal

from bson import Decimal128

# Decimal128 holds 34 significant digits; a longer amount is rounded rather than refused.
_DECIMAL128_DIGITS = Context(prec=34)

# Decimal128 in its Binary Integer Decimal form (what `Decimal128((high, low))` takes):
# the coefficient in the low 113 bits, above it the exponent plus a bias, the sign on top.
_EXPONENT_BIAS = 6176
_SIGN = 1 << 63
_LOW_64 = (1 << 64) - 1
# The exponents a coefficient of up to 34 digits keeps as it is: from the smallest
# subnormal's to the largest one without padding the coefficient (Decimal128 "clamps").
_LOWEST_EXPONENT = -_EXPONENT_BIAS
_HIGHEST_EXPONENT = 6144 - 33


def decimal128(amount: Decimal) -> Decimal128:
    """`amount` rounded to 34 significant digits, as Decimal128.

    The same value and representation as `Decimal128(amount rounded)`, about four times
    faster: bson converts in pure Python (3 us an amount, half the cost of building a
    usage record). Amounts whose exponent Decimal128 would clamp or refuse, and NaN and
    the infinities, are left to bson, which decides as it always did.
    """
    value = _DECIMAL128_DIGITS.create_decimal(amount)
    sign, _, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not _LOWEST_EXPONENT <= exponent <= _HIGHEST_EXPONENT:
        return Decimal128(value)
    # Exact: at most 34 digits, scaled to an integer in a 34-digit context.
    coefficient = abs(int(value.scaleb(-exponent, _DECIMAL128_DIGITS)))
    high = (exponent + _EXPONENT_BIAS) << 49 | coefficient >> 64
    if sign:
        high |= _SIGN
    # bson's annotation leaves out the (high, low) form its constructor documents and
    # takes (`from_bid` would pack and unpack the same two ints: twice the time).
    return Decimal128((high, coefficient & _LOW_64))  # type: ignore[arg-type]
