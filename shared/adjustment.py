"""Splits and dividends, and the adjustment of daily bars by them, applied when read.

History is stored as it traded (raw), with the corporate actions beside it; an
answer is adjusted when asked:

- ``raw``: prices and volumes as traded;
- ``split``: each bar's prices divided, and its volume multiplied, by the product of
  the ratios (``split_to / split_from``) of every split executed after it: what the
  vendor's ``adjusted=true`` gives;
- ``all``: split-adjusted, and each price also multiplied by the backward factor
  ``1 - cash / previous close`` of every ex-date after the bar (its counted cash
  dividends summed), so that returns include the dividends (total return; volumes as
  for ``split``).

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
# The cash distributions total return counts, by the vendor's ``distribution_type``
# (GET /stocks/v1/dividends). Every one is cash paid out of the price on its ex-date:
# recurring (the regular dividend), special and supplemental (one-off or extra cash),
# irregular (off schedule), and unknown, which the vendor gives real dividends too (AAPL's
# of 2012) and counts in its own adjustment factor. A return of capital, when the vendor
# labels one so, counts as well: the price drops by it like by any cash paid out, and a
# holder's total return includes it. Any other type is listed but not adjusted for.
COUNTED_DISTRIBUTIONS = ("recurring", "special", "supplemental", "irregular", "unknown", "return_of_capital")
# The same, as the deprecated /v3/reference/dividends spelled it (actions stored from it
# until the next ingestion reconciles them): regular, special, long- and short-term gains.
LEGACY_CASH_DIVIDENDS = ("CD", "SC", "LT", "ST")
# A split's ``adjustment_type``: forward and reverse splits, and stock dividends (a 5% stock
# dividend is split_from 100, split_to 105); all three change the share count alike.
ADJUSTMENT_TYPES = ("forward_split", "reverse_split", "stock_dividend")
DIGITS = 6
SCALE = 10.0**DIGITS
# The vendor rounds historical_adjustment_factor to 6 decimals.
FACTOR_TOLERANCE = 1e-6


class CorporateAction(NamedTuple):
    symbol: str
    kind: str  # "split" or "dividend"
    day: date  # a split's execution date, a dividend's ex-dividend date
    split_from: float | None = None
    split_to: float | None = None
    amount: float | None = None  # cash per share, on the ex-date
    dividend_type: str | None = None  # the vendor's distribution_type (or a legacy code)
    currency: str | None = None
    # The raw close of the last session before a dividend's ex-date, and that day.
    prev_close: float | None = None
    prev_day: date | None = None
    ref: str = ""  # the vendor's id: one action is stored once
    adjustment_type: str | None = None  # a split's, from the vendor (None: stored before it said)

    @property
    def ratio(self) -> float:
        """A split's new shares per old share: 4-for-1 is 4, 1-for-10 is 0.1."""
        if self.split_from is None or self.split_to is None:
            raise ValueError(f"{self.symbol} {self.day}: a {self.kind} has no split ratio")
        return float(self.split_to) / float(self.split_from)

    @property
    def split_kind(self) -> str:
        """forward_split, reverse_split or stock_dividend: the vendor's word, or the ratio's."""
        if self.adjustment_type in ADJUSTMENT_TYPES:
            return self.adjustment_type
        return "reverse_split" if self.ratio < 1 else "forward_split"

    @property
    def group(self) -> tuple[str, str, date]:
        """What the vendor's list of a symbol's actions decides: its actions of a kind on a day."""
        return self.symbol, self.kind, self.day


class VendorAction(NamedTuple):
    """An action as the vendor lists it, and the vendor's own cumulative factor for it
    (``historical_adjustment_factor``: checked against ours, never stored)."""

    action: CorporateAction
    vendor_factor: float | None


def _number(row: dict, name: str) -> float:
    value = row[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is {value!r}, not a number")
    return float(value)


def _factor(row: dict) -> float | None:
    value = row.get("historical_adjustment_factor")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def split_from_vendor(symbol: str, row: dict) -> VendorAction:
    """One row of ``GET /stocks/v1/splits``."""
    split_from, split_to = _number(row, "split_from"), _number(row, "split_to")
    if split_from <= 0 or split_to <= 0:
        raise ValueError(f"split ratio {split_to}:{split_from} is not positive")
    kind = row.get("adjustment_type")
    action = CorporateAction(
        symbol,
        "split",
        date.fromisoformat(row["execution_date"]),
        split_from=split_from,
        split_to=split_to,
        ref=str(row.get("id") or f"split:{row['execution_date']}:{split_from}:{split_to}"),
        adjustment_type=kind if kind in ADJUSTMENT_TYPES else None,
    )
    return VendorAction(action, _factor(row))


def dividend_from_vendor(symbol: str, row: dict) -> VendorAction:
    """One row of ``GET /stocks/v1/dividends``: ``cash_amount`` as paid on the ex-date (the
    vendor's dividends are not adjusted for later splits; ``split_adjusted_cash_amount`` is)."""
    amount = _number(row, "cash_amount")
    action = CorporateAction(
        symbol,
        "dividend",
        date.fromisoformat(row["ex_dividend_date"]),
        amount=amount,
        dividend_type=str(row.get("distribution_type") or "unknown"),
        currency=row.get("currency") or "USD",
        ref=str(row.get("id") or f"dividend:{row['ex_dividend_date']}:{amount}"),
    )
    return VendorAction(action, _factor(row))


def merge_actions(
    stored: list[CorporateAction], incoming: list[CorporateAction]
) -> tuple[list[CorporateAction], list[CorporateAction]]:
    """The vendor's list decides each (symbol, kind, day) it covers: what was stored for it
    (under the deprecated endpoints' ids, or a correction since) is replaced, never doubled.
    What it does not cover is kept. Returns (the merged actions, the stored ones kept)."""
    covered = {a.group for a in incoming}
    known = {(a.group, a.ref): a for a in stored}  # one of each, wherever it was read from
    kept = [a for a in known.values() if a.group not in covered]
    merged = []
    for a in incoming:
        before = known.get((a.group, a.ref))
        if a.prev_close is None and before is not None and before.prev_close is not None:
            a = a._replace(prev_close=before.prev_close, prev_day=before.prev_day)
        merged.append(a)
    return sorted(kept + merged, key=lambda a: (a.day, a.kind, a.ref)), kept


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


def counted(a: CorporateAction) -> bool:
    """A cash dividend in USD that total return adjusts for."""
    kind = a.dividend_type or "unknown"
    return (kind in COUNTED_DISTRIBUTIONS or kind in LEGACY_CASH_DIVIDENDS) and (a.currency or "USD") == "USD"


def _close_in_ex_date_shares(a: CorporateAction, split_days: list[date], ratios: list[float]) -> float | None:
    if a.prev_close is None or a.prev_close <= 0:
        return None
    close = a.prev_close
    if a.prev_day is not None:
        # A split after the previous session, on or before the ex-date: the close in new shares.
        for day, ratio in zip(split_days, ratios):
            if a.prev_day < day <= a.day:
                close /= ratio
    return close


def dividend_factor(a: CorporateAction, split_days: list[date], ratios: list[float]) -> float | None:
    """``1 - amount / previous close``, the close taken in the ex-date's shares; None
    when it cannot be known (no previous close stored) or is not a counted cash dividend
    in USD (``counted``)."""
    if a.kind != "dividend" or not a.amount or not counted(a):
        return None
    close = _close_in_ex_date_shares(a, split_days, ratios)
    if close is None:
        return None
    factor = 1 - a.amount / close
    return factor if 0 < factor < 1 else None


def ex_date_factors(actions, split_days: list[date], ratios: list[float]) -> dict[date, float]:
    """What ``all`` multiplies the prices before each ex-date by: ``1 - cash / previous
    close`` with every counted dividend of that day summed (a special beside a regular
    dividend: the price drops by both, so 1 - (a + b) / close, not the product)."""
    cash: dict[date, float] = {}
    closes: dict[date, float] = {}
    for a in actions:
        if dividend_factor(a, split_days, ratios) is None:
            continue
        cash[a.day] = cash.get(a.day, 0.0) + float(a.amount or 0.0)
        closes[a.day] = _close_in_ex_date_shares(a, split_days, ratios) or 0.0
    out = {}
    for day, paid in cash.items():
        factor = 1 - paid / closes[day]
        if 0 < factor < 1:
            out[day] = factor
    return out


def cumulative_factors(actions: list[CorporateAction]) -> dict[str, float | None]:
    """By action ref, what the vendor's ``historical_adjustment_factor`` should be if our
    events are the vendor's: for a split, the product of ``split_from / split_to`` of it and
    every later split; for a dividend, the product of the ex-date factors of its day and
    every later one (None where ours cannot be known: no previous close, not counted)."""
    split_days, ratios = _split_days(actions)
    day_factors = ex_date_factors(actions, split_days, ratios)
    out: dict[str, float | None] = {}
    for a in actions:
        if a.kind == "split":
            factor = 1.0
            for day, ratio in zip(split_days, ratios):
                if day >= a.day:
                    factor /= ratio
            out[a.ref] = factor
        elif a.day in day_factors:
            factor = 1.0
            for day, value in day_factors.items():
                if day >= a.day:
                    factor *= value
            out[a.ref] = factor
        else:
            out[a.ref] = None
    return out


def factor_disagreements(actions: list[CorporateAction], vendor: dict[str, float | None]) -> list[str]:
    """Where the vendor's cumulative factor and ours (from the stored events) disagree, one
    line each, latest first (the first is where a vendor error or a missing event starts);
    a vendor factor we cannot compute ours for is said too. Silent only when all agree."""
    ours = cumulative_factors(actions)
    lines = []
    for a in sorted(actions, key=lambda a: (a.day, a.kind), reverse=True):
        theirs = vendor.get(a.ref)
        if theirs is None:
            continue
        if a.kind == "dividend" and a.prev_close is None:
            continue  # on or before the first stored bar: there is nothing of ours it adjusts
        mine = ours.get(a.ref)
        what = f"{a.day} {a.kind}"
        if mine is None:
            why = f"a {a.dividend_type} dividend in {a.currency}, which total return does not count"
            lines.append(f"{what}: the vendor's factor is {theirs:.6f}, ours cannot be computed ({why})")
        elif abs(mine - theirs) > FACTOR_TOLERANCE:
            lines.append(f"{what}: the vendor's factor is {theirs:.6f}, ours {mine:.6f}")
    return lines


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
        for day, factor in ex_date_factors(actions, split_days, ratios).items():
            changes.setdefault(day, [1.0, 1.0])[1] *= factor
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
        public(a, split_days, ratios)
        for a in sorted(actions, key=lambda a: (a.day, a.kind, a.ref))
        if start <= a.day <= end
    ]


def public(action: CorporateAction, split_days: list[date], ratios: list[float]) -> dict:
    """An action as answers list it (``split_days``, ``ratios``: the symbol's splits)."""
    if action.kind == "split":
        return {
            "date": action.day.isoformat(),
            "type": "split",
            "split_from": action.split_from,
            "split_to": action.split_to,
            "adjustment_type": action.split_kind,
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
