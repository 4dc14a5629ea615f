"""Daily bars and the one Fibonacci N-day aggregator every service uses.

A daily bar is a tuple ``(day, open, high, low, close, volume)`` with ``day`` a
``datetime.date``: cheap to build from a database row or a Parquet column.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import partial
from typing import NamedTuple

from shared.errors import bad_request


class DailyBar(NamedTuple):
    day: date
    open: float
    high: float
    low: float
    close: float
    # A float: the vendor's volumes can be fractional.
    volume: float


# tuple.__new__ straight from C: DailyBar(*row) and DailyBar._make cost a
# Python call per row, which shows when a read builds thousands of bars.
make_bar = partial(tuple.__new__, DailyBar)

# N-day bars count trading sessions, not calendar days (Polygon's 3/day bars
# are calendar windows, which is why we build them ourselves).
INTERVALS = {"1d": 1, "daily": 1, "3d": 3, "5d": 5, "8d": 8, "13d": 13, "21d": 21, "34d": 34}


def parse_interval(raw: str | None) -> tuple[str, int]:
    """The interval's canonical name and its number of sessions."""
    name = "1d" if raw is None else raw
    if name not in INTERVALS:
        raise bad_request(
            "invalid_interval", f"interval must be one of 1d (or daily), 3d, 5d, 8d, 13d, 21d, 34d; got {raw!r}"
        )
    sessions = INTERVALS[name]
    return ("1d" if sessions == 1 else name), sessions


def aggregate(daily: Iterable[DailyBar], sessions: int) -> list[dict]:
    """N-day bars of ``sessions`` consecutive sessions, counted from the first bar.

    Only the last bar can hold fewer sessions; it is marked ``partial``. With
    ``sessions == 1`` the daily bars are returned as they are.
    """
    rows = list(daily)
    if sessions == 1:
        return [
            {"date": b[0].isoformat(), "open": b[1], "high": b[2], "low": b[3], "close": b[4], "volume": b[5]}
            for b in rows
        ]
    out = []
    for i in range(0, len(rows), sessions):
        group = rows[i : i + sessions]
        out.append(
            {
                "date": group[0][0].isoformat(),
                "end_date": group[-1][0].isoformat(),
                "open": group[0][1],
                "high": max(b[2] for b in group),
                "low": min(b[3] for b in group),
                "close": group[-1][4],
                "volume": sum(b[5] for b in group),
                "sessions": len(group),
                "partial": len(group) < sessions,
            }
        )
    return out


def problems(bar: DailyBar, today: date) -> list[str]:
    """Why a daily bar cannot be stored; empty when it is sound."""
    found = []
    day, open_, high, low, close, volume = bar
    if day > today:
        found.append("date is in the future")
    if min(open_, high, low, close) <= 0:
        found.append("prices must be positive")
    if high < max(open_, close):
        found.append("high is below open or close")
    if low > min(open_, close):
        found.append("low is above open or close")
    if volume < 0:
        found.append("volume is negative")
    return found
