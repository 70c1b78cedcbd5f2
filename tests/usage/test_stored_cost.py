"""Costs as MongoDB stores them: Decimal128, exactly the value and representation bson's
own conversion gives, rounded to 34 digits; what Decimal128 cannot hold is refused."""

from __future__ import annotations

import random
from decimal import Context, Decimal, Inexact, Overflow

import pytest
from bson import Decimal128

from documents.database import Database
from documents.money import decimal128
from resolvers.usage.recorder import UsageRecorder
from tests.usage.test_usage_recorder import entry

D = Decimal


@pytest.mark.parametrize(
    ("amount", "stored"),
    [
        ("0.000123456789", "0.000123456789"),
        ("0", "0"),
        ("-0", "-0"),
        # A zero keeps its exponent, as bson keeps it.
        ("0E-12", "0E-12"),
        ("0E-7000", "0E-6176"),
        ("0E+7000", "0E+6111"),
        ("0." + "3" * 40, "0." + "3" * 34),
        ("1" * 40, "1.111111111111111111111111111111111E+39"),
        # Rounded half to even, in the 34th digit.
        ("123456789012345678901234567890123.45", "123456789012345678901234567890123.4"),
        ("123456789012345678901234567890123.55", "123456789012345678901234567890123.6"),
        ("-0.000000000000000000000000000000000000012345678901234567890123456789012345678",
         "-1.234567890123456789012345678901235E-38"),
        # The smallest Decimal128, and exponents it can only hold with a longer coefficient.
        ("1E-6176", "1E-6176"),
        ("1E+6111", "1E+6111"),
        ("1E+6144", "1.000000000000000000000000000000000E+6144"),
        ("9.999999999999999999999999999999999E+6144", "9.999999999999999999999999999999999E+6144"),
        ("NaN", "NaN"),
        ("-Infinity", "-Infinity"),
    ],
)  # fmt: skip
def test_a_cost_is_stored_as_exactly_this_decimal128(amount: str, stored: str) -> None:
    converted = decimal128(D(amount))
    assert converted == Decimal128(stored)  # the same 128 bits
    assert str(converted) == stored


@pytest.mark.parametrize(
    ("amount", "error"),
    [("1E-6177", Inexact), ("1.5E-6176", Inexact), ("1E+6145", Overflow)],
)
def test_a_cost_decimal128_cannot_hold_is_refused(amount: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decimal128(D(amount))


def bson_conversion(amount: Decimal) -> Decimal128:
    """What the costs were stored as before: bson's conversion of the rounded amount."""
    return Decimal128(Context(prec=34).create_decimal(amount))


def outcome(convert: object, amount: Decimal) -> tuple[str, object]:
    assert callable(convert)
    try:
        return "stored", convert(amount).bid
    except ArithmeticError as exc:
        return "refused", type(exc)


def test_any_cost_is_stored_as_bson_would_store_it() -> None:
    rng = random.Random(128)
    for _ in range(20_000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40)))
        # Everyday, anywhere, and around the smallest and the largest Decimal128.
        ranges = [(-40, 10), (-6200, 6200), (-6215, -6170), (6100, 6150)]
        exponent = rng.randint(*rng.choice(ranges))
        amount = D(f"{rng.choice(['', '-'])}{digits}E{exponent}")
        assert outcome(decimal128, amount) == outcome(bson_conversion, amount), amount


async def test_awkward_costs_are_stored_and_totalled_exactly(database: Database) -> None:
    costs = [
        D("0.000000000000000000000000000000000001"),
        D("0." + "3" * 40),
        D("12345678901234567890.123456789012345678"),
        D("0E-12"),
        D("7E+20"),
    ]
    recorder = UsageRecorder(database)
    for n, cost in enumerate(costs):
        recorder.record(entry(n, cost=cost))
    recorder.record(entry(99, cost=D("1E+6145")))  # beyond Decimal128: refused alone
    assert await recorder.flush() == len(costs)
    assert recorder.rejected == 1

    stored = database.db["usage_records"].find({}, {"cost": 1}).sort("requestId", 1)
    assert [doc["cost"] async for doc in stored] == [bson_conversion(c) for c in costs]
    total = await database.db["usage_totals"].find_one({"userId": "alice"})
    assert total is not None
    exact = Context(prec=34)
    expected = D(0)
    for cost in costs:
        expected = exact.add(expected, exact.create_decimal(cost))
    assert total["cost"] == bson_conversion(expected)
