"""Pagination across the tier seam, property-based, through the API (the aggregator's own
properties are in ``tests/unit/test_fibonacci_bars.py``)."""

from __future__ import annotations

import json
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bars import INTERVALS

SEAM = date(2019, 12, 31)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.dates(min_value=SEAM - timedelta(days=400), max_value=SEAM + timedelta(days=60)),
    length=st.integers(min_value=0, max_value=700),
    limit=st.integers(min_value=1, max_value=40),
    interval=st.sampled_from(sorted(INTERVALS)),
)
def test_pages_concatenate_to_the_unpaginated_answer(backtest_client, start, length, limit, interval):
    end = start + timedelta(days=length)
    query = f"symbol=HIST&start={start}&end={end}&interval={interval}"
    whole = json.loads(backtest_client.http.get(f"/api/backtest?{query}&limit=10000").body)
    pages, cursor, count = [], None, 0
    while True:
        url = f"/api/backtest?{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = json.loads(backtest_client.http.get(url).body)
        pages.extend(body["bars"])
        cursor = body["next_cursor"]
        count += 1
        if cursor is None:
            break
        assert len(body["bars"]) == limit  # only the last page is short
        assert not body["bars"][-1].get("partial", False)  # a page never splits a bar
    assert pages == whole["bars"]
    days = [b["date"] for b in pages]
    assert days == sorted(set(days))
