"""The NYSE holiday table the services read equals the holidays package's calendar."""

from __future__ import annotations

from datetime import date, datetime, time

from devtools.release.nyse_holidays import table
from shared import market_calendar


def test_the_table_is_the_packages_calendar():
    stored = {
        kind: {d.isoformat(): name for year in market_calendar.TABLE_YEARS for d, name in table_[year].items()}
        for kind, table_ in (
            ("holidays", market_calendar._table("holidays")),
            ("early_closes", market_calendar._table("early_closes")),
        )
    }
    assert stored == table(), "run python -m devtools.release.nyse_holidays after upgrading holidays"


def test_a_year_outside_the_table_asks_the_package():
    assert market_calendar.holiday(date(2045, 12, 25)) is not None
    assert not market_calendar.is_session(date(2026, 11, 26))  # Thanksgiving
    assert market_calendar.is_session(date(2026, 11, 27))


def test_early_closes_end_the_session_at_one_in_new_york():
    new_york = market_calendar.NEW_YORK
    for day in (date(2024, 11, 29), date(2024, 12, 24), date(2024, 7, 3)):
        assert market_calendar.early_close(day), day
        assert market_calendar.market_status(datetime.combine(day, time(12, 59), new_york)) == (True, "open")
        is_open, why = market_calendar.market_status(datetime.combine(day, time(13, 0), new_york))
        assert not is_open and why.startswith("outside 09:30-13:00") and "early close" in why
        assert market_calendar.session_close(day) == datetime.combine(day, time(13, 0), new_york)
    ordinary = date(2024, 11, 27)
    assert market_calendar.early_close(ordinary) is None
    assert market_calendar.market_status(datetime.combine(ordinary, time(15, 59), new_york)) == (True, "open")
    assert market_calendar.session_close(ordinary) == datetime.combine(ordinary, time(16, 0), new_york)
    # Outside the stored table the package answers, early closes too.
    assert market_calendar.early_close(date(2045, 11, 24))
