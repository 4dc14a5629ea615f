"""Public-domain daily OHLCV (AAPL, MSFT, IBM, GOOG, FB; 2000-03 to 2013-03) from
the ``bokeh-sampledata`` package, as unadjusted daily bars, and the corporate
actions they show: the three splits visible in them as the price halving
overnight, and Apple's quarterly dividends of 2012-13 (real; the sample's other
dividends are not modelled)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from shared.bars import DailyBar


@lru_cache(maxsize=1)
def sample_bars() -> dict[str, list[DailyBar]]:
    from bokeh_sampledata import stocks

    out = {}
    for symbol in ("AAPL", "MSFT", "IBM", "GOOG", "FB"):
        series = getattr(stocks, symbol)
        out[symbol] = [
            DailyBar(date.fromisoformat(d), o, h, lo, c, int(v))
            for d, o, h, lo, c, v in zip(
                series["date"],
                series["open"],
                series["high"],
                series["low"],
                series["close"],
                series["volume"],
                strict=False,
            )
        ]
    return out


# (execution date, split_from, split_to): each is the day the raw price halves.
SAMPLE_SPLITS = {
    "AAPL": [(date(2000, 6, 21), 1.0, 2.0), (date(2005, 2, 28), 1.0, 2.0)],
    "MSFT": [(date(2003, 2, 18), 1.0, 2.0)],
}
# (ex-dividend date, cash per share): Apple's first three quarterly dividends.
SAMPLE_DIVIDENDS = {
    "AAPL": [(date(2012, 8, 9), 2.65), (date(2012, 11, 7), 2.65), (date(2013, 2, 7), 2.65)],
}


def synthetic_bars(symbol: str, start: date, days: int, base: float = 100.0) -> list[DailyBar]:
    """Weekday bars with a deterministic wiggle; valid OHLC."""
    out, d, price, seed = [], start, base, sum(map(ord, symbol))
    while len(out) < days:
        if d.weekday() < 5:
            step = ((seed * 7919 + len(out) * 104729) % 200 - 100) / 1000
            open_ = round(price, 2)
            close = round(max(1.0, price * (1 + step / 10)), 2)
            high = round(max(open_, close) * 1.01, 2)
            low = round(min(open_, close) * 0.99, 2)
            out.append(DailyBar(d, open_, high, low, close, 1_000_000 + len(out)))
            price = close
        d += timedelta(days=1)
    return out


def write_csv(path, until: date | None = None) -> int:
    """The sample data as an ingestible CSV (Symbol,Date,Open,High,Low,Close,Volume), up to ``until``."""
    import csv

    rows = 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Symbol", "Date", "Open", "High", "Low", "Close", "Volume"])
        for symbol, bars in sorted(sample_bars().items()):
            for b in bars:
                if until is not None and b.day > until:
                    continue
                writer.writerow([symbol, b.day.isoformat(), b.open, b.high, b.low, b.close, b.volume])
                rows += 1
    return rows
