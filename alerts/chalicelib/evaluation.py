"""A rule's operands for one symbol at one check, from the symbol's indicator state
(``shared.indicators``: whole-history values, read in O(1)) and its live quote.

Two points are compared, now (0) and before (1), for ``crosses`` and ``change_pct``:

- a rule on completed bars only (``close``, ``sma(50)``, ...): the last completed bar,
  and the bar before it;
- a rule that reads the live price (``price``, ``change_pct``): its indicators include
  today's price as the current bar's close, as the last bar of a chart does during the
  session, and the point before is the last completed bar. (A quote of the same session
  as the last stored bar, outside market hours, replaces that bar instead.)

``open``/``high``/``low``/``close``/``volume`` are always the completed bars'.
"""

from __future__ import annotations

from datetime import date, datetime

from shared.indicators import IndicatorState, Point
from shared.market_calendar import NEW_YORK

from .records import Rule


class MissingData(Exception):
    """Not enough data to evaluate a rule now: it is skipped, not failed."""


def quote_session(quote: dict) -> date | None:
    as_of = quote.get("as_of")
    if not as_of:
        return None
    return datetime.fromisoformat(as_of.replace("Z", "+00:00")).astimezone(NEW_YORK).date()


class Evaluation:
    """Operand values of one symbol, each computed once per check whatever the number of
    rules asking (``value(operand, point, live)``)."""

    def __init__(self, state: IndicatorState | None, quote: dict | None):
        self.state = state
        self.quote = quote
        self._memo: dict = {}
        self.before: Point | None = None
        self.last: Point | None = None
        self.live: Point | None = None
        self.live_before: Point | None = None
        if state is None:
            return
        self.before, last = state.points()
        self.last = last
        if quote is not None:
            session = quote_session(quote)
            if session is None or session > state.day:
                self.live, self.live_before = last.then(quote["price"]), last
            elif self.before is not None:
                self.live, self.live_before = self.before.then(quote["price"]), self.before
            else:
                self.live, self.live_before = Point((quote["price"],), 1), None

    def value(self, operand: tuple, point: int, live: bool) -> float:
        key = (operand, point, live)
        if key not in self._memo:
            try:
                self._memo[key] = self._value(operand, point, live)
            except MissingData as exc:
                self._memo[key] = exc
        found = self._memo[key]
        if isinstance(found, MissingData):
            raise found
        return found

    def _value(self, operand: tuple, point: int, live: bool) -> float:
        kind, name = operand[0], operand[1]
        if self.state is None:
            raise MissingData("not_enough_history")
        if kind == "field" and name in ("price", "change_pct"):
            result = self._live_field(name, point)
        elif kind == "field":
            bars = self.state.bars
            bar = bars[-1 - point] if point < len(bars) else None
            result = getattr(bar, name) if bar is not None else None
        else:
            at = (self.live if point == 0 else self.live_before) if live else (self.last if point == 0 else self.before)
            result = getattr(at, name)(operand[2]) if at is not None else None
        if result is None:
            raise MissingData("not_enough_history")
        return float(result)

    def _live_field(self, name: str, point: int) -> float | None:
        if point == 0:
            if self.quote is None:
                raise MissingData("no_quote")
            return self.quote["price"] if name == "price" else self.quote.get("change_pct")
        previous = self.live_before if self.quote is not None else self.last
        if previous is None:
            return None
        if name == "price":
            return previous.close
        closes = previous.closes
        return (closes[-1] / closes[-2] - 1) * 100 if len(closes) >= 2 and closes[-2] else None


def firing_id(rule: Rule, trading_day: date) -> str:
    """The identity of this firing: the same for a retry of the same check."""
    if rule.frequency == "once":
        return f"{rule.id}:once"
    if rule.frequency == "once_per_bar":
        return f"{rule.id}:day:{trading_day.isoformat()}"
    return f"{rule.id}:cycle:{rule.cycle}"
