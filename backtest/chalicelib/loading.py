"""Loading daily bars into both tiers: what ingestion (the ``batch`` command line)
and the daily update (a scheduled function of this app) share.

- ``fetch_history``: a symbol's raw (unadjusted) daily bars from Polygon's
  aggregates, every ``next_url`` page, each page retried and charged to the
  budget. A 429 is waited out (its ``Retry-After``) within the run's ``Patience``,
  then the same page is asked again; the symbol fails only when that patience is
  spent, and says so. No bars at all is told apart: an unknown ticker, or an empty range.
- ``fetch_actions``: the symbol's whole history of splits and dividends.
- ``validate``: every row checked; rejected rows kept with their reasons.
- ``store``: one symbol's bars and actions into the lake (whole objects, rewritten
  only when they change) and PostgreSQL (the recent window; rows upserted only
  where a value differs), and the symbol's span and basis. In this order: the
  actions, the lake, then PostgreSQL's rows and basis in one transaction, so a
  migration from a split-adjusted store that stops anywhere leaves every symbol
  answerable (``shared.adjustment``).

The serving API never reaches this module (the IAM scan proves it): only the
daily update function's role may write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, datetime

from shared import polygon, postgres
from shared.adjustment import (
    CorporateAction,
    VendorAction,
    dividend_from_vendor,
    factor_disagreements,
    merge_actions,
    split_from_vendor,
    with_previous_closes,
)
from shared.bars import DailyBar, problems
from shared.market_calendar import NEW_YORK
from shared.polygon import BudgetExceeded, UpstreamError

from . import lake_writer, postgres_writer
from .lake import Lake

# When a 429 says nothing about how long to wait.
DEFAULT_RATE_LIMIT_WAIT_S = 5.0


@dataclass
class Rejected:
    symbol: str
    day: str
    reason: str


class OutOfPatience(Exception):
    pass


class Patience:
    """How long one run may spend waiting on the upstream, in all: its 429s'
    ``Retry-After`` and our own budget. Past that a symbol fails, saying why."""

    def __init__(self, max_wait_s: float, sleep=time.sleep):
        self.max_wait_s = max_wait_s
        self.waited_s = 0.0
        self.sleep = sleep

    def wait(self, seconds: float, why: str) -> None:
        if self.waited_s + seconds > self.max_wait_s:
            raise OutOfPatience(
                f"{why}; this run has waited {self.waited_s:.0f} s of the {self.max_wait_s:.0f} s it may wait"
            )
        self.sleep(seconds)
        self.waited_s += seconds


class WaitingBudget:
    """A batch job waits for the allowance instead of giving up, within its patience."""

    def __init__(self, inner, patience: Patience):
        self.inner = inner
        self.patience = patience

    def acquire(self) -> None:
        while True:
            try:
                return self.inner.acquire()
            except BudgetExceeded as exc:
                self.patience.wait(exc.retry_after_s, "the upstream call budget is spent")


class UnknownTicker(Exception):
    def __init__(self, symbol: str):
        super().__init__(f"Polygon does not know the ticker {symbol}")


def patient_call(fn, budget, settings, patience: Patience):
    """One upstream request (``polygon.call``: retried, each attempt charged), with
    429s waited out within ``patience`` and the same request asked again."""
    while True:
        try:
            return polygon.call(fn, budget, settings)
        except UpstreamError as exc:
            if exc.kind != polygon.RATE_LIMITED:
                raise
            wait = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RATE_LIMIT_WAIT_S
            try:
                patience.wait(wait, f"rate limited by the upstream (429, Retry-After {wait:g} s)")
            except OutOfPatience as out:
                raise UpstreamError(polygon.RATE_LIMITED, str(out)) from None


def fetch_history(gateway, budget, settings, symbol: str, start: date, end: date, patience: Patience):
    bars, next_url, followed = [], None, set()
    while True:
        results, next_url = patient_call(
            lambda u=next_url: gateway.daily_bars_page(symbol, start, end, u), budget, settings, patience
        )
        for r in results:
            bars.append(bar_from(r))
        if not next_url:
            break
        if next_url in followed:
            # A page that leads back to one already read would be followed until the
            # budget stopped it, storing its bars again each time.
            raise UpstreamError(polygon.BAD_RESPONSE, f"the upstream's next_url for {symbol} leads back to a page read")
        followed.add(next_url)
    if not bars and not patient_call(lambda: gateway.ticker_known(symbol), budget, settings, patience):
        raise UnknownTicker(symbol)
    return bars


def action_rows(gateway, budget, settings, patience: Patience, kind: str, **filters):
    """Every row of the vendor's ``kind`` (splits or dividends) with ``filters``, a call
    a page (5,000 rows); a ``next_url`` met again ends it."""
    next_url, followed = None, set()
    while True:
        rows, next_url = patient_call(
            lambda u=next_url: gateway.actions_page(kind, u, **filters), budget, settings, patience
        )
        yield from rows
        if not next_url or next_url in followed:
            return
        followed.add(next_url)


def parse_action(kind: str, symbol: str, row: dict) -> VendorAction:
    parse = split_from_vendor if kind == "splits" else dividend_from_vendor
    try:
        return parse(symbol, row)
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(polygon.BAD_RESPONSE, f"malformed {kind} row {row!r}: {exc}") from None


@dataclass
class FetchedActions:
    """A symbol's splits and dividends as the vendor lists them, and the vendor's cumulative
    factor of each (by ref: checked against ours when stored, never stored)."""

    actions: list[CorporateAction]
    vendor_factors: dict[str, float | None]

    @classmethod
    def of(cls, listed: list[VendorAction]) -> FetchedActions:
        return cls([v.action for v in listed], {v.action.ref: v.vendor_factor for v in listed})


def fetch_actions(gateway, budget, settings, symbol: str, patience: Patience) -> FetchedActions:
    """Every split and dividend the vendor has for ``symbol``: two calls (more past 5,000)."""
    return FetchedActions.of(
        [
            parse_action(kind, symbol, row)
            for kind in ("splits", "dividends")
            for row in action_rows(gateway, budget, settings, patience, kind, ticker=symbol)
        ]
    )


class LegacyHistory(Exception):
    """A symbol stored split-adjusted (before raw bars) cannot take raw bars merged in."""


def bar_from(r: dict) -> DailyBar:
    """A Polygon aggregate (``t``: 00:00 America/New_York of the session, epoch ms)."""
    try:
        day = datetime.fromtimestamp(r["t"] / 1000, NEW_YORK).date()
        # Volumes are floats, and can be fractional (split-adjusted ones always may be).
        return DailyBar(day, float(r["o"]), float(r["h"]), float(r["l"]), float(r["c"]), float(r["v"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise UpstreamError(polygon.BAD_RESPONSE, f"malformed aggregate row {r!r}: {exc}") from None


def validate(symbol: str, bars: list[DailyBar], today: date) -> tuple[list[DailyBar], list[Rejected]]:
    good, rejected, seen = [], [], set()
    for bar in bars:
        reasons = problems(bar, today)
        if bar.day in seen:
            reasons.append("more than one row for this date")
        if reasons:
            rejected.append(Rejected(symbol, bar.day.isoformat(), "; ".join(reasons)))
            continue
        seen.add(bar.day)
        good.append(bar)
    return good, rejected


@dataclass
class Stored:
    """What storing one symbol changed, and what it found about its actions."""

    lake_changed: bool
    recent_rows_changed: int
    # Stored actions the vendor's current list does not have (from the deprecated
    # endpoints, or withdrawn since): kept, and said.
    actions_kept: list[CorporateAction] = field(default_factory=list)
    # Where the vendor's cumulative factors and ours disagree (shared.adjustment).
    factor_disagreements: list[str] = field(default_factory=list)


def store(
    symbol: str,
    bars: list[DailyBar],
    database,
    lake: Lake,
    since: date,
    replace: bool = False,
    actions: FetchedActions | None = None,
    basis: str = "raw",
) -> Stored:
    """Write one symbol's bars (and its actions, when given) to both tiers.

    ``replace``: ``bars`` is the symbol's whole history, not bars to merge in (a
    migration from a split-adjusted store replaces it so). ``basis``: what ``bars``
    are; raw bars are never merged into a split-adjusted history (``LegacyHistory``).
    ``actions``: the vendor's whole list for the symbol, which replaces what was stored
    for each day it covers (``merge_actions``: nothing doubled) and keeps the rest.
    """
    found = lake.read_with_basis(symbol)
    existing, stored_basis = found if found else ([], basis)
    if replace or not existing:
        merged = sorted(bars, key=lambda b: b.day)
    elif stored_basis != basis:
        raise LegacyHistory(
            f"{symbol} is stored split-adjusted, from before raw bars: migrate it first "
            "(python -m batch.migrate_raw; the README says how)"
        )
    else:
        merged = lake_writer.merge(existing, bars)
    result = Stored(False, 0)
    if actions is not None:
        stored_actions = database.run(lambda conn: postgres.read_actions(conn, [symbol]))[symbol]
        all_actions, result.actions_kept = merge_actions(stored_actions + (lake.actions(symbol) or []), actions.actions)
        # A dividend keeps the raw close before its ex-date (the factor of adjustment=all).
        all_actions = with_previous_closes(all_actions, merged) if basis == "raw" else all_actions
        if basis == "raw":
            result.factor_disagreements = factor_disagreements(all_actions, actions.vendor_factors)

        # Known complete from here on: a migration stopped before its PostgreSQL step still
        # answers every adjustment (each tier's part adjusted from what it holds).
        def write_actions(conn) -> None:
            postgres_writer.upsert_actions(conn, all_actions)
            postgres_writer.mark_actions_loaded(conn, [symbol])

        database.run(write_actions)
        lake_writer.write_actions(lake, symbol, all_actions)
    result.lake_changed = merged != existing or (replace and stored_basis != basis)
    if result.lake_changed:
        lake_writer.write(lake, symbol, merged, basis)
    recent = [b for b in (merged if replace else bars) if b.day >= since]

    def write(conn):
        conn.run("BEGIN")
        try:
            if replace:
                conn.run("DELETE FROM daily_bars WHERE symbol = :s", s=symbol)
            changed: int = postgres_writer.upsert_bars(conn, symbol, recent)
            if merged:
                postgres_writer.record_symbol(
                    conn, symbol, merged[0].day, merged[-1].day, basis, actions_loaded=actions is not None
                )
            conn.run("COMMIT")
        except Exception:
            conn.run("ROLLBACK")
            raise
        return changed

    result.recent_rows_changed = database.run(write)
    return result
