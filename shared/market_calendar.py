"""The NYSE calendar: trading sessions, market hours, and which session's daily bar
should be stored by now. Used by the alerts check (is the market open; is a
symbol's history current) and the backtest app's daily update (which days to fill).

Holidays and early closes (13:00 New York on some days around holidays, e.g.
2024-11-29 and 2024-12-24) come from the maintained ``holidays`` package (its NYSE
calendar and its ``half_day`` category), kept as a table for 1990-2040 so that a
cold start does not import it. The market's hours, a session's close and so the
quote's previous-close time all know the early closes.

A session's bar is *due* once the daily update has run for it: at
``UPDATE_DUE_UTC`` (22:30 UTC, after the 16:00 close in both EST and EDT, when
Polygon's grouped daily bars are complete). Before that the previous session
is the latest one history can hold.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
OPEN, CLOSE, EARLY_CLOSE = time(9, 30), time(16, 0), time(13, 0)
UPDATE_DUE_UTC = time(22, 30)


# The holidays package's NYSE calendar for these years, written out by
# ``python -m devtools.release.nyse_holidays`` (tests/test_market_calendar.py checks it still
# equals the package's): importing the package costs a Lambda cold start ~350 ms
# (measured: 207 ms to import, 144 ms to build a year), looking a day up here nothing.
TABLE_YEARS = range(1990, 2041)
_TABLE = Path(__file__).with_name("nyse_holidays.json")


@lru_cache(maxsize=2)
def _table(kind: str = "holidays") -> dict[int, dict[date, str]]:
    """``kind``: "holidays" (no session) or "early_closes" (a session ending at 13:00)."""
    raw = json.loads(_TABLE.read_text())[kind]
    out: dict[int, dict[date, str]] = {year: {} for year in TABLE_YEARS}
    for day, name in raw.items():
        d = date.fromisoformat(day)
        out[d.year][d] = name
    return out


@lru_cache(maxsize=128)
def _days(kind: str, year: int) -> dict[date, str]:
    if year in TABLE_YEARS:
        return _table(kind)[year]
    return library_days(kind, year)


def library_days(kind: str, year: int) -> dict[date, str]:
    """The package's NYSE holidays, or its early closes (the ``half_day`` category)."""
    from holidays.financial.ny_stock_exchange import NewYorkStockExchange

    if kind == "early_closes":
        return dict(NewYorkStockExchange(years=year, categories=("half_day",)))
    return dict(NewYorkStockExchange(years=year))


def holiday(day: date) -> str | None:
    return _days("holidays", day.year).get(day)


def early_close(day: date) -> str | None:
    """Why the session of ``day`` ends at 13:00 New York, or None (16:00 as usual)."""
    return _days("early_closes", day.year).get(day)


def closing_time(day: date) -> time:
    return EARLY_CLOSE if early_close(day) else CLOSE


def is_session(day: date) -> bool:
    """An NYSE trading day."""
    return day.weekday() < 5 and holiday(day) is None


def sessions_between(first: date, last: date) -> list[date]:
    """Trading days from ``first`` to ``last``, both included."""
    out, day = [], first
    while day <= last:
        if is_session(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def previous_session(day: date) -> date:
    day -= timedelta(days=1)
    while not is_session(day):
        day -= timedelta(days=1)
    return day


def session_close(day: date) -> datetime:
    """When a session's regular trading ends: 16:00 New York, 13:00 on an early close."""
    return datetime.combine(day, closing_time(day), NEW_YORK)


def last_close_before(moment: datetime) -> datetime:
    """The close of the last session that ended before ``moment``."""
    local = moment.astimezone(NEW_YORK)
    day = local.date()
    if is_session(day) and local >= session_close(day):
        return session_close(day)
    return session_close(previous_session(day))


def latest_due_session(now: datetime, as_of: date | None = None) -> date:
    """The newest session whose daily bar history should hold by ``now``.

    With ``as_of`` (``RECENT_AS_OF``: history as it stood on that day, e.g. the
    demo's 2013 sample data) that day's session is the latest, its bar counted
    as in.
    """
    if as_of is not None:
        return as_of if is_session(as_of) else previous_session(as_of)
    now = now.astimezone(UTC)
    day = now.date()
    if is_session(day) and now.time() >= UPDATE_DUE_UTC:
        return day
    return previous_session(day)


def sessions_behind(last_stored: date | None, due: date) -> int | None:
    """How many sessions up to ``due`` (``latest_due_session``) a history ending on
    ``last_stored`` lacks (None: no history)."""
    if last_stored is None:
        return None
    if last_stored >= due:
        return 0
    return len(sessions_between(last_stored + timedelta(days=1), due))


def market_status(now: datetime) -> tuple[bool, str]:
    local = now.astimezone(NEW_YORK)
    if local.weekday() >= 5:
        return False, "weekend"
    name = holiday(local.date())
    if name:
        return False, f"NYSE holiday: {name}"
    close = closing_time(local.date())
    if not OPEN <= local.time() < close:
        why = f" (early close: {early_close(local.date())})" if close != CLOSE else ""
        return False, f"outside 09:30-{close:%H:%M} America/New_York{why}"
    return True, "open"
