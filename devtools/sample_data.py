"""Public-domain daily OHLCV (AAPL, MSFT, IBM, GOOG, FB; 2000-03 to 2013-03) from
the ``bokeh-sampledata`` package, as unadjusted daily bars."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from devtools.fake_polygon import DailyBar


@lru_cache(maxsize=1)
def sample_bars() -> dict[str, list[DailyBar]]:
    from bokeh_sampledata import stocks

    out = {}
    for symbol in ("AAPL", "MSFT", "IBM", "GOOG", "FB"):
        series = getattr(stocks, symbol)
        out[symbol] = [
            DailyBar(date.fromisoformat(d), o, h, lo, c, int(v))
            for d, o, h, lo, c, v in zip(series["date"], series["open"], series["high"],
                                          series["low"], series["close"], series["volume"])
        ]
    return out
