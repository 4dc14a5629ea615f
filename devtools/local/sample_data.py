"""Public-domain daily OHLCV (AAPL, MSFT, IBM, GOOG, FB; 2000-03 to 2013-03) from
the ``bokeh-sampledata`` package, as unadjusted daily bars, and the corporate
actions they show: the three splits visible in them as the price halving
overnight, Apple's quarterly dividends of 2012-13 and Microsoft's special dividend
of 2004 beside its regular one on the same ex-date (real; the sample's other
dividends are not modelled).

And one synthetic symbol, ``ZVZZT`` (Nasdaq's own test symbol, so no real company's
prices are made up), on the same sessions: a low-priced stock that pays a 5% stock
dividend in 2007 and makes a 1-for-10 reverse split in 2011, the two share changes
the real sample lacks."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from shared.bars import DailyBar

DEMO_SYMBOL = "ZVZZT"
DEMO_STOCK_DIVIDEND = date(2007, 6, 15)  # 5 new shares per 100
DEMO_REVERSE_SPLIT = date(2011, 5, 9)  # 1 new share per 10


@lru_cache(maxsize=1)
def sample_bars() -> dict[str, list[DailyBar]]:
    from bokeh_sampledata import stocks

    out: dict[str, list[DailyBar]] = {}
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
    out[DEMO_SYMBOL] = demo_bars([b.day for b in out["AAPL"]])
    return out


def demo_bars(sessions: list[date]) -> list[DailyBar]:
    """ZVZZT as it would trade: a value per original share that drifts down from $20 to
    about $1, divided by the shares each original one has become (1.05 after the stock
    dividend, 0.105 after the reverse split), volumes multiplied by them."""
    out, value, seed = [], 20.0, 7
    for i, day in enumerate(sessions):
        seed = (seed * 1103515245 + 12345) % 2**31
        step = (seed / 2**31 - 0.5) * 0.06 - 0.001
        opened, value = value, max(0.3, value * (1 + step))
        shares = (1.05 if day >= DEMO_STOCK_DIVIDEND else 1.0) * (0.1 if day >= DEMO_REVERSE_SPLIT else 1.0)
        o, c = round(opened / shares, 2), round(value / shares, 2)
        high, low = round(max(o, c) * 1.012, 2), round(min(o, c) * 0.988, 2)
        out.append(DailyBar(day, o, high, low, c, float(round(800_000 * shares) + i % 97 * 1000)))
    return out


# (execution date, split_from, split_to[, the vendor's adjustment_type]): each real one
# is the day the raw price halves.
SAMPLE_SPLITS = {
    "AAPL": [(date(2000, 6, 21), 1.0, 2.0), (date(2005, 2, 28), 1.0, 2.0)],
    "MSFT": [(date(2003, 2, 18), 1.0, 2.0)],
    DEMO_SYMBOL: [(DEMO_STOCK_DIVIDEND, 100.0, 105.0, "stock_dividend"), (DEMO_REVERSE_SPLIT, 10.0, 1.0)],
}
# (ex-dividend date, cash per share, the vendor's distribution_type): Apple's first three
# quarterly dividends (which the vendor's own sample lists as "unknown"), and Microsoft's
# $3 special dividend of 2004 beside its regular $0.08, both going ex on 2004-11-15.
SAMPLE_DIVIDENDS = {
    "AAPL": [
        (date(2012, 8, 9), 2.65, "unknown"),
        (date(2012, 11, 7), 2.65, "unknown"),
        (date(2013, 2, 7), 2.65, "unknown"),
    ],
    "MSFT": [(date(2004, 11, 15), 3.00, "special"), (date(2004, 11, 15), 0.08, "recurring")],
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
