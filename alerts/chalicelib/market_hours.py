"""Is the US stock market open? America/New_York 09:30-16:00 on NYSE trading days.

Holidays come from the maintained ``holidays`` package (its NYSE calendar).
Early closes (13:00 on some days before holidays) are not modelled: a check
in those afternoon hours sees prices that no longer move, which is harmless.
"""

from __future__ import annotations

from datetime import datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
OPEN, CLOSE = time(9, 30), time(16, 0)


@lru_cache(maxsize=8)
def _holidays(year: int):
    import holidays

    return holidays.financial_holidays("NYSE", years=year)


def market_status(now: datetime) -> tuple[bool, str]:
    local = now.astimezone(NEW_YORK)
    if local.weekday() >= 5:
        return False, "weekend"
    holiday = _holidays(local.year).get(local.date())
    if holiday:
        return False, f"NYSE holiday: {holiday}"
    if not OPEN <= local.time() < CLOSE:
        return False, "outside 09:30-16:00 America/New_York"
    return True, "open"
