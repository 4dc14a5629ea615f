"""Indicators against values computed by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.chalicelib.condition import parse
from shared.indicators import ema, ema_series, rsi, sma, sma_series


def test_sma():
    assert sma([1, 2, 3, 4, 5], 3) == pytest.approx(4.0)  # (3+4+5)/3
    assert sma([1, 2], 3) is None


def test_ema_seeded_with_sma():
    # n=3, alpha=0.5; seed = (1+2+3)/3 = 2; then 0.5*4+0.5*2 = 3; then 0.5*5+0.5*3 = 4
    assert ema([1, 2, 3, 4, 5], 3) == pytest.approx(4.0)
    # n=2, alpha=2/3; seed = (10+11)/2 = 10.5; 2/3*12 + 1/3*10.5 = 11.5
    assert ema([10, 11, 12], 2) == pytest.approx(11.5)
    assert ema([1, 2], 3) is None


def test_ema_runs_over_the_whole_history():
    # n=2, alpha=2/3: seed (100+100)/2 = 100; 1 -> 34; 2 -> 12.6667; 3 -> 6.2222; 4 -> 4.7407
    assert ema([100, 100, 1, 2, 3, 4], 2) == pytest.approx(4.740740740740741)
    assert ema([100, 100, 1, 2, 3, 4], 2) != ema([1, 2, 3, 4], 2)  # the early closes still count


def test_rsi_wilder():
    # changes +1, -1, +2, -1 with n=2: first averages over (+1, -1): gain 0.5, loss 0.5
    # then +2: gain (0.5*1+2)/2 = 1.25, loss 0.5/2 = 0.25
    # then -1: gain 1.25/2 = 0.625, loss (0.25+1)/2 = 0.625  -> RS 1 -> RSI 50
    assert rsi([10, 11, 10, 12, 11], 2) == pytest.approx(50.0)
    # changes +1, +2: gain 1.5, loss 0 -> 100
    assert rsi([1, 2, 4], 2) == pytest.approx(100.0)
    # changes +2, -1 with n=2: gain 1, loss 0.5 -> RS 2 -> 100 - 100/3
    assert rsi([10, 12, 11], 2) == pytest.approx(100 - 100 / 3)
    assert rsi([1, 2], 2) is None


def test_crosses_compares_the_previous_point_with_the_current():
    condition = parse("close crosses above sma(2)")
    # before: close 10 vs sma 10.5 (below); now: close 12 vs sma 11 (above)
    series = {0: {"close": 12, "sma": 11}, 1: {"close": 10, "sma": 10.5}}
    assert condition.evaluate(lambda op, p: series[p][op[1]]) is True
    series[1]["close"] = 11  # already above before: no cross
    assert condition.evaluate(lambda op, p: series[p][op[1]]) is False
    below = parse("close crosses below sma(2)")
    assert below.evaluate(lambda op, p: {0: 9, 1: 11}[p] if op[1] == "close" else 10) is True


def test_and_or_and_parentheses():
    values = {"close": 5, "volume": 100, "price": 7}
    value = lambda op, p: values[op[1]]  # noqa: E731
    assert parse("close < 6 and (volume > 1000 or price >= 7)").evaluate(value) is True
    assert parse("close < 6 and volume > 1000 or price > 7").evaluate(value) is False
    assert parse("(close > 6 or volume <= 100) and price <= 7").evaluate(value) is True


@settings(max_examples=200, deadline=None)
@given(
    closes=st.lists(st.floats(min_value=0.01, max_value=1e5), min_size=0, max_size=120),
    n=st.integers(min_value=1, max_value=30),
)
def test_series_equal_the_pointwise_indicators(closes, n):
    """The chart's overlay series are the alerts' sma/ema at every point, not an approximation."""
    for series, pointwise in ((sma_series, sma), (ema_series, ema)):
        values = series(closes, n)
        assert len(values) == len(closes)
        for i, value in enumerate(values):
            expected = pointwise(closes[: i + 1], n)
            if expected is None:
                assert value is None
            else:
                assert value == pytest.approx(expected, rel=1e-9, abs=1e-9)
