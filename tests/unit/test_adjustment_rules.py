"""Adjustment on read, without a server: raw bars and their splits and dividends in,
the answer each ``adjustment`` asks for out (the API's own tests are in
``tests/test_adjustment.py``)."""

from __future__ import annotations

from datetime import date

import pytest

from shared.adjustment import CorporateAction, adjust, ex_date_factors
from shared.bars import DailyBar

DAYS = [date(2020, 1, d) for d in (6, 7, 8, 9, 10)]


def bars(closes, volume=100.0):
    return [DailyBar(day, c, c, c, c, volume) for day, c in zip(DAYS, closes)]


def split(day, new_per_old):
    return CorporateAction("X", "split", day, split_from=1, split_to=new_per_old)


def dividend(day, amount, prev_close, kind="recurring", currency="USD"):
    return CorporateAction(
        "X", "dividend", day, amount=amount, dividend_type=kind, currency=currency, prev_close=prev_close, prev_day=None
    )


def closes(adjusted):
    return [b.close for b in adjusted]


def test_raw_is_the_bars_as_traded():
    raw = bars([100, 102, 51, 52, 53])
    assert adjust(raw, [split(DAYS[2], 2)], "raw") is raw


def test_a_split_divides_every_earlier_price_and_multiplies_its_volume():
    adjusted = adjust(bars([100, 102, 51, 52, 53]), [split(DAYS[2], 2)], "split")
    assert closes(adjusted) == [50, 51, 51, 52, 53]
    assert [b.volume for b in adjusted] == [200, 200, 100, 100, 100]


def test_a_reverse_split_multiplies_earlier_prices():
    adjusted = adjust(bars([1, 1.1, 10, 10, 10]), [split(DAYS[2], 0.1)], "split")
    assert closes(adjusted) == [10, 11, 10, 10, 10]


def test_two_splits_compound_and_a_bar_on_the_split_day_is_after_it():
    adjusted = adjust(bars([400, 200, 100, 100, 100]), [split(DAYS[1], 2), split(DAYS[2], 2)], "split")
    assert closes(adjusted) == [100, 100, 100, 100, 100]


def test_total_return_scales_earlier_prices_by_one_minus_the_dividend_over_the_previous_close():
    actions = [dividend(DAYS[3], 2.0, prev_close=100.0)]
    adjusted = adjust(bars([100, 100, 100, 98, 98]), actions, "all")
    assert closes(adjusted) == [98, 98, 98, 98, 98]
    assert closes(adjust(bars([100, 100, 100, 98, 98]), actions, "split")) == [100, 100, 100, 98, 98]


def test_dividends_of_one_day_are_summed_not_multiplied():
    actions = [dividend(DAYS[3], 3.0, 100.0, kind="special"), dividend(DAYS[3], 1.0, 100.0)]
    assert ex_date_factors(actions, [], []) == {DAYS[3]: pytest.approx(0.96)}


@pytest.mark.parametrize(
    "action",
    [dividend(DAYS[3], 2.0, 100.0, currency="CAD"), dividend(DAYS[3], 2.0, None), dividend(DAYS[3], 200.0, 100.0)],
    ids=["not USD", "no previous close", "more than the price"],
)
def test_a_dividend_that_cannot_be_counted_leaves_prices_alone(action):
    assert closes(adjust(bars([100, 100, 100, 98, 98]), [action], "all")) == [100, 100, 100, 98, 98]


def test_rows_stored_split_adjusted_are_taken_back_to_raw():
    stored = bars([50, 51, 51, 52, 53], volume=200.0)
    raw = adjust(stored, [split(DAYS[2], 2)], "raw", basis="split")
    assert closes(raw) == [100, 102, 51, 52, 53]
    assert adjust(stored, [split(DAYS[2], 2)], "split", basis="split") is stored
