"""Splits and dividends, and the adjustment of daily bars by them, applied when read.

History is stored as it traded (raw), with the corporate actions beside it; an
answer is adjusted when asked:

- ``raw``: prices and volumes as traded;
- ``split``: each bar's prices divided, and its volume multiplied, by the product of
  the ratios (``split_to / split_from``) of every split executed after it: what the
  vendor's ``adjusted=true`` gives;
- ``all``: split-adjusted, and each price also multiplied by the backward factor
  ``1 - dividend / previous close`` of every cash dividend whose ex-date is after the
  bar, so that returns include the dividends (total return; volumes as for ``split``).

A new split or dividend changes no stored bar, only the factors. The previous
close of a dividend is the raw close of the last session before its ex-date,
kept with the dividend when it is stored (``with_previous_closes``); a split
between that session and the ex-date is allowed for, so the amount and the close
are compared in the same shares.

Bars stored before this (split-adjusted as the vendor gave them: ``basis`` "split")
are turned back into raw with the same splits first, so a store half migrated
answers right (README: "Migrating a split-adjusted store").
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date
from typing import NamedTuple

from shared.bars import DailyBar, make_bar

ADJUSTMENTS = ("raw", "split", "all")
DEFAULT_ADJUSTMENT = "split"
BASES = ("raw", "split")
# The vendor's cash dividend types: regular (CD), special (SC), long- and short-term
# capital gains (LT, ST). All are cash paid out of the price.
CASH_DIVIDENDS = ("CD", "SC", "LT", "ST")
DIGITS = 6
SCALE = 10.0**DIGITS


class CorporateAction(NamedTuple):
    symbol: str
    kind: str  # "split" or "dividend"
    day: date  # a split's execution date, a dividend's ex-dividend date
    split_from: float | None = None
    split_to: float | None = None
    amount: float | None = None  # cash per share, on the ex-date
    dividend_type: str | None = None
    currency: str | None = None
    # The raw close of the last session before a dividend's ex-date, and that day.
    prev_close: float | None = None
    prev_day: date | None = None
    ref: str = ""  # the vendor's id: one action is stored once

    @property
    def ratio(self) -> float:
        """A split's new shares per old share: 4-for-1 is 4, 1-for-10 is 0.1."""
        if self.split_from is None or self.split_to is None:
            raise ValueError(f"{self.symbol} {self.day}: a {self.kind} has no split ratio")
        return float(self.split_to) / float(self.split_from)


def split_from_vendor(symbol: str, row: dict) -> CorporateAction:
    """One row of ``/v3/reference/splits``."""
    return CorporateAction(
        symbol,
        "split",
        date.fromisoformat(row["execution_date"]),
        split_from=float(row["split_from"]),
        split_to=float(row["split_to"]),
        ref=str(row.get("id") or f"split:{row['execution_date']}"),
    )


def dividend_from_vendor(symbol: str, row: dict) -> CorporateAction:
    """One row of ``/v3/reference/dividends``."""
    return CorporateAction(
        symbol,
        "dividend",
        date.fromisoformat(row["ex_dividend_date"]),
        amount=float(row["cash_amount"]),
        dividend_type=row.get("dividend_type") or "CD",
        currency=row.get("currency") or "USD",
        ref=str(row.get("id") or f"dividend:{row['ex_dividend_date']}:{row['cash_amount']}"),
    )


def with_previous_closes(actions: list[CorporateAction], bars: list[DailyBar]) -> list[CorporateAction]:
    """Each dividend with the raw close of the last bar of ``bars`` before its ex-date
    (``bars`` raw and sorted); one whose previous close is already known keeps it."""
    days = [b.day for b in bars]
    out = []
    for a in actions:
        if a.kind == "dividend" and a.prev_close is None:
            i = bisect_right(days, a.day) - 1
            if i >= 0 and days[i] == a.day:
                i -= 1
            if i >= 0:
                a = a._replace(prev_close=bars[i].close, prev_day=days[i])
        out.append(a)
    return out


def _split_days(actions) -> tuple[list[date], list[float]]:
    splits = sorted((a.day, a.ratio) for a in actions if a.kind == "split")
    return [d for d, _ in splits], [r for _, r in splits]


def dividend_factor(a: CorporateAction, split_days: list[date], ratios: list[float]) -> float | None:
    """``1 - amount / previous close``, the close taken in the ex-date's shares; None
    when it cannot be known (no previous close stored) or is not a cash dividend in USD."""
    if a.kind != "dividend" or a.prev_close is None or a.prev_close <= 0 or not a.amount:
        return None
    if (a.dividend_type or "CD") not in CASH_DIVIDENDS or (a.currency or "USD") != "USD":
        return None
    close = a.prev_close
    if a.prev_day is not None:
        # A split after the previous session, on or before the ex-date: the close in new shares.
        for day, ratio in zip(split_days, ratios):
            if a.prev_day < day <= a.day:
                close /= ratio
    factor = 1 - a.amount / close
    return factor if 0 < factor < 1 else None


def adjust(bars: list[DailyBar], actions: list[CorporateAction], adjustment: str, basis: str = "raw") -> list[DailyBar]:
    """``bars`` (sorted, stored as ``basis``) adjusted as ``adjustment`` asks, by the
    symbol's ``actions``.

    The factors are constant between two action dates, so the bars are adjusted a run
    at a time (one comprehension per run, no per-bar bookkeeping): linear in bars, and
    the bars after the last action are the stored ones themselves."""
    if not bars or (adjustment == "raw" and basis == "raw") or (adjustment == "split" and basis == "split"):
        return bars
    split_days, ratios = _split_days(actions)
    changes: dict[date, list[float]] = {}  # day -> [split ratio, dividend factor] taking effect that day
    for day, ratio in zip(split_days, ratios):
        changes.setdefault(day, [1.0, 1.0])[0] *= ratio
    if adjustment == "all":
        for a in actions:
            factor = dividend_factor(a, split_days, ratios)
            if factor is not None:
                changes.setdefault(a.day, [1.0, 1.0])[1] *= factor
    change_days = sorted(d for d in changes if d > bars[0][0])
    # What every change from the k-th on multiplies: the factors of the bars before change k.
    splits_after, dividends_after = [1.0] * (len(change_days) + 1), [1.0] * (len(change_days) + 1)
    for k in range(len(change_days) - 1, -1, -1):
        split, dividend = changes[change_days[k]]
        splits_after[k] = splits_after[k + 1] * split
        dividends_after[k] = dividends_after[k + 1] * dividend
    days = [b[0] for b in bars]
    out: list[DailyBar] = []
    lo = 0
    for k in range(len(change_days) + 1):
        # A bar on a change's own day is after it: not adjusted by it.
        hi = bisect_left(days, change_days[k], lo) if k < len(change_days) else len(bars)
        if hi == lo:
            continue
        later_splits = splits_after[k]
        # Stored split-adjusted: back to raw first (prices up, volume down by the later splits).
        to_raw = later_splits if basis == "split" else 1.0
        if adjustment == "raw":
            price, volume = to_raw, 1 / to_raw
        else:
            price = to_raw / later_splits * (dividends_after[k] if adjustment == "all" else 1.0)
            volume = later_splits / to_raw
        if price == 1.0 and volume == 1.0:
            out.extend(bars[lo:hi])
        else:
            # int(x * 1e6 + 0.5) / 1e6 is round(x, 6) for positive prices at a fifth of its cost.
            p = price * SCALE
            out.extend(
                [
                    make_bar(
                        (
                            d,
                            int(o * p + 0.5) / SCALE,
                            int(h * p + 0.5) / SCALE,
                            int(lw * p + 0.5) / SCALE,
                            int(c * p + 0.5) / SCALE,
                            v * volume,
                        )
                    )
                    for d, o, h, lw, c, v in bars[lo:hi]
                ]
            )
        lo = hi
    return out


def listed(actions: list[CorporateAction], start: date, end: date) -> list[dict]:
    """The actions from ``start`` to ``end`` as answers list them, in date order."""
    split_days, ratios = _split_days(actions)
    return [
        public(a, split_days, ratios) for a in sorted(actions, key=lambda a: (a.day, a.kind)) if start <= a.day <= end
    ]


def public(action: CorporateAction, split_days: list[date], ratios: list[float]) -> dict:
    """An action as answers list it (``split_days``, ``ratios``: the symbol's splits)."""
    if action.kind == "split":
        return {
            "date": action.day.isoformat(),
            "type": "split",
            "split_from": action.split_from,
            "split_to": action.split_to,
        }
    return {
        "date": action.day.isoformat(),
        "type": "dividend",
        "amount": action.amount,
        "dividend_type": action.dividend_type,
        "currency": action.currency,
        # What adjustment=all multiplies the prices before the ex-date by (null: not adjusted for).
        "factor": dividend_factor(action, split_days, ratios),
    }
