"""Indicators as charting sites show them: over the whole history (EMA seeded with the
SMA of its first n closes, Wilder's RSI), checked against an independent computation
(pandas) to 1e-6 relative; the stored state, stepped by a bar or by a live price, equal
to the same values computed from scratch."""

from __future__ import annotations

import math

import pytest

from backtest.chalicelib.indicator_states import compute
from shared.indicators import MAX_PERIOD, Bar, ema, rsi, sma
from tests.support import pandas_ema, pandas_rsi, pandas_sma, walk

PERIODS = (1, 2, 3, 14, 20, 50, 199, 200)
REL = 1e-6


def close_enough(got, expected) -> bool:
    if expected is None:
        return got is None
    return got is not None and math.isclose(got, expected, rel_tol=REL, abs_tol=1e-9)


def values(point) -> dict:
    return {
        **{("sma", n): point.sma(n) for n in PERIODS},
        **{("ema", n): point.ema(n) for n in PERIODS},
        **{("rsi", n): point.rsi(n) for n in PERIODS if n >= 2},
    }


def expected(closes) -> dict:
    return {
        **{("sma", n): pandas_sma(closes, n) for n in PERIODS},
        **{("ema", n): pandas_ema(closes, n) for n in PERIODS},
        **{("rsi", n): pandas_rsi(closes, n) for n in PERIODS if n >= 2},
    }


def mismatches(got: dict, want: dict) -> dict:
    return {k: (got[k], want[k]) for k in want if not close_enough(got[k], want[k])}


@pytest.mark.parametrize("count", [1, 2, 3, 15, 199, 200, 201, 202, 1500, 6000])
def test_the_state_gives_pandas_values_at_the_last_bar_the_one_before_and_a_live_price(count):
    bars = walk(count)
    closes = [b.close for b in bars]
    state = compute("WALK", bars, "raw|1|")
    before, last = state.points()
    assert mismatches(values(last), expected(closes)) == {}
    if count >= 2:
        assert mismatches(values(before), expected(closes[:-1])) == {}
    else:
        assert before is None
    live = closes[-1] * 1.03  # today's price as the session's bar
    assert mismatches(values(last.then(live)), expected([*closes, live])) == {}


def test_the_reference_functions_are_the_whole_history_values():
    closes = [b.close for b in walk(1500)]
    for n in PERIODS:
        assert close_enough(ema(closes, n), pandas_ema(closes, n))
        assert close_enough(sma(closes, n), pandas_sma(closes, n))
        if n >= 2:
            assert close_enough(rsi(closes, n), pandas_rsi(closes, n))


def test_a_window_of_3n_closes_is_not_what_the_chart_shows():
    """The control: over the last 3n+1 closes only (what the check did before) RSI(14)
    is off by more than the tolerance on this walk, so the comparison above can fail."""
    closes = [b.close for b in walk(1500)]
    windowed = pandas_rsi(closes[-43:], 14)
    assert not close_enough(windowed, pandas_rsi(closes, 14))


def test_stepping_the_state_bar_by_bar_equals_computing_it_from_scratch():
    bars = walk(700, seed=3)
    state = compute("WALK", bars[:600], "raw|1|")
    for bar in bars[600:]:
        state = state.stepped(Bar(*bar))
    fresh = compute("WALK", bars, "raw|1|")
    assert (state.day, state.count, state.closes, state.bars) == (fresh.day, fresh.count, fresh.closes, fresh.bars)
    for mine, theirs in ((state.ema, fresh.ema), (state.gain, fresh.gain), (state.loss, fresh.loss)):
        assert len(mine) == MAX_PERIOD
        for a, b in zip(mine, theirs, strict=True):
            assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def test_stepping_across_the_seeds_of_a_short_history():
    """From 1 bar to 250, every n seeded on the way, stepped from a one-bar state."""
    bars = walk(250, seed=11)
    state = compute("WALK", bars[:1], "raw|1|")
    for bar in bars[1:]:
        state = state.stepped(Bar(*bar))
    _, last = state.points()
    assert mismatches(values(last), expected([b.close for b in bars])) == {}
