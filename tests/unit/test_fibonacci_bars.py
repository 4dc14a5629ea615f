"""The Fibonacci N-day aggregator, property-based: against an independent re-aggregation."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shared.bars import INTERVALS, DailyBar, aggregate


@st.composite
def daily_series(draw):
    n = draw(st.integers(min_value=0, max_value=120))
    day, out = date(2020, 1, 1), []
    for _ in range(n):
        day += timedelta(days=draw(st.integers(min_value=1, max_value=4)))
        o = draw(st.floats(min_value=1, max_value=1000, allow_nan=False))
        c = draw(st.floats(min_value=1, max_value=1000, allow_nan=False))
        h = max(o, c) + draw(st.floats(min_value=0, max_value=10))
        lo = min(o, c) - draw(st.floats(min_value=0, max_value=0.9))
        out.append(DailyBar(day, o, h, lo, c, draw(st.integers(min_value=0, max_value=10**9))))
    return out


def reaggregate(daily, n):
    """An independent, deliberately plain re-aggregation to compare against."""
    bars, group = [], []
    for bar in daily:
        group.append(bar)
        if len(group) == n:
            bars.append(group)
            group = []
    if group:
        bars.append(group)
    return [
        {
            "date": g[0].day.isoformat(),
            "end_date": g[len(g) - 1].day.isoformat(),
            "open": g[0].open,
            "high": sorted(b.high for b in g)[-1],
            "low": sorted(b.low for b in g)[0],
            "close": g[len(g) - 1].close,
            "volume": sum(b.volume for b in g),
            "sessions": len(g),
            "partial": len(g) != n,
        }
        for g in bars
    ]


@given(daily_series(), st.sampled_from(sorted({v for v in INTERVALS.values() if v > 1})))
def test_n_day_bars_equal_an_independent_reaggregation(daily, n):
    bars = aggregate(daily, n)
    assert bars == reaggregate(daily, n)
    assert all(not b["partial"] for b in bars[:-1])
    assert sum(b["sessions"] for b in bars) == len(daily)


@given(daily_series())
def test_daily_interval_returns_the_bars_unchanged(daily):
    assert [(b["date"], b["open"], b["close"]) for b in aggregate(daily, 1)] == [
        (d.day.isoformat(), d.open, d.close) for d in daily
    ]
