"""The NYSE holiday table the services read equals the holidays package's calendar."""

from __future__ import annotations

from datetime import date

from devtools.nyse_holidays import table
from shared import market_calendar


def test_the_table_is_the_packages_calendar():
    stored = {
        d.isoformat(): name
        for year in market_calendar.TABLE_YEARS
        for d, name in market_calendar._table()[year].items()
    }
    assert stored == table(), "run python -m devtools.nyse_holidays after upgrading holidays"


def test_a_year_outside_the_table_asks_the_package():
    assert market_calendar.holiday(date(2045, 12, 25)) is not None
    assert not market_calendar.is_session(date(2026, 11, 26))  # Thanksgiving
    assert market_calendar.is_session(date(2026, 11, 27))
