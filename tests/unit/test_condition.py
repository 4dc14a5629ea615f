"""The alert condition language: what parses, what it means, and what a refusal says."""

from __future__ import annotations

import pytest

from alerts.chalicelib.condition import ConditionError, label, parse


def at(values: dict):
    """An operand lookup: ``values[label]`` is (now, before), or one number for both."""

    def value(operand, point):
        got = values[label(operand)]
        return got[point] if isinstance(got, tuple) else got

    return value


@pytest.mark.parametrize(
    ("text", "values", "holds"),
    [
        ("close < sma(50)", {"close": 9, "sma(50)": 10}, True),
        ("close < sma(50)", {"close": 10, "sma(50)": 10}, False),
        ("close <= sma(50)", {"close": 10, "sma(50)": 10}, True),
        ("price > 10 and volume > 1000000", {"price": 11, "volume": 2e6}, True),
        ("price > 10 and volume > 1000000", {"price": 11, "volume": 5}, False),
        ("(rsi(14) < 30 or change_pct <= -5) and price > 10", {"rsi(14)": 50, "change_pct": -6, "price": 11}, True),
        ("rsi(14) < 30 or change_pct <= -5 and price > 10", {"rsi(14)": 20, "change_pct": 0, "price": 1}, True),
        ("PRICE > 1 AND Close < 2", {"price": 2, "close": 1}, True),
        ("10 < price", {"price": 11}, True),
        ("price > -1.5", {"price": -1}, True),
    ],
)
def test_comparisons_and_connectives(text, values, holds):
    assert parse(text).evaluate(at(values)) is holds


@pytest.mark.parametrize(
    ("before", "now", "above", "below"),
    [
        ((9, 10), (11, 10), True, False),  # from below to above
        ((10, 10), (11, 10), True, False),  # from equal counts as from below
        ((11, 10), (12, 10), False, False),  # above all along is not a cross
        ((11, 10), (9, 10), False, True),
        ((10, 10), (10, 10), False, False),  # equal, then equal
    ],
)
def test_a_cross_compares_the_point_before_with_now(before, now, above, below):
    values = {"price": (now[0], before[0]), "ema(20)": (now[1], before[1])}
    assert parse("price crosses above ema(20)").evaluate(at(values)) is above
    assert parse("price crosses below ema(20)").evaluate(at(values)) is below


def test_what_a_condition_needs():
    condition = parse("close crosses above sma(50) and price > ema(20) and close > 1")
    assert [label(op) for op in condition.operands()] == ["close", "sma(50)", "price", "ema(20)"]
    assert condition.needs_quote() and condition.needs_previous()
    assert not parse("close < sma(50)").needs_quote()
    assert not parse("close < sma(50)").needs_previous()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("close <", "expected"),
        ("close < sma(0)", "1 <= n <= 200"),
        ("rsi(1) < 30", "2 <= n <= 200"),
        ("ema(201) > 1", "1 <= n <= 200"),
        ("1 < 2", "at least one operand that is not a number"),
        ("close < foo", "syntax error at position 9"),
        ("__import__('os')", "syntax error at position 1"),
        ("close = 1", "syntax error"),
    ],
)
def test_a_refusal_says_what_and_where(text, says):
    with pytest.raises(ConditionError) as refused:
        parse(text)
    assert says in refused.value.message
