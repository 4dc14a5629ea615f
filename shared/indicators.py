"""Technical indicators on daily closes, oldest first, over a symbol's **whole** stored
history, as a chart of daily bars shows them: one definition for the alerts check (a
rule's ``close < sma(50)``) and the chart overlays the backtest API serves, so the line
a user sees is the line a rule compares against.

- ``sma(n)``: the mean of the last n closes.
- ``ema(n)``: alpha = 2 / (n + 1), seeded with the SMA of the first n closes, then run
  over every close after them.
- ``rsi(n)``: Wilder's: the average gain and loss of the first n changes, then smoothed
  by 1/n over every change after them; 100 - 100 / (1 + gain / loss).

``sma``/``ema``/``rsi`` give the value at the last close (None while the history is
shorter than the indicator needs); ``sma_series``/``ema_series`` every point in O(len).

A check cannot read each symbol's whole history every 15 minutes, and need not: an
``IndicatorState`` holds what the recursions carry (each EMA, each average gain and
loss, for every n up to ``MAX_PERIOD``) as of the bar before the last, with the last
``WINDOW`` closes. The daily update computes it once a day (backtest's
``indicator_states.py``); a check steps it to the last bar and, for a rule on the live
price, once more to today's price (``Point``): O(1) per symbol and operand, whatever the
history's length, and equal to the whole-history values to rounding.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

MAX_PERIOD = 200
# The closes a state keeps: SMA(200) at the last bar and at the one before, and the
# seeds of a history shorter than 200 closes.
WINDOW = MAX_PERIOD + 1
NAN = float("nan")


def sma(closes: Sequence[float], n: int) -> float | None:
    if n < 1 or len(closes) < n:
        return None
    return sum(closes[-n:]) / n


def ema(closes: Sequence[float], n: int) -> float | None:
    """Over every close: seeded with the SMA of the first n."""
    if n < 1 or len(closes) < n:
        return None
    alpha = 2 / (n + 1)
    value = sum(closes[:n]) / n
    for close in closes[n:]:
        value = alpha * close + (1 - alpha) * value
    return value


def rsi(closes: Sequence[float], n: int) -> float | None:
    """Wilder's relative strength index over every change."""
    if n < 1 or len(closes) < n + 1:
        return None
    changes = [b - a for a, b in zip(closes, closes[1:])]
    gain = sum(max(c, 0) for c in changes[:n]) / n
    loss = sum(max(-c, 0) for c in changes[:n]) / n
    for change in changes[n:]:
        gain = (gain * (n - 1) + max(change, 0)) / n
        loss = (loss * (n - 1) + max(-change, 0)) / n
    return strength(gain, loss)


def strength(gain: float, loss: float) -> float:
    if loss == 0:
        return 100.0 if gain > 0 else 50.0
    return 100 - 100 / (1 + gain / loss)


def sma_series(closes: Sequence[float], n: int) -> list[float | None]:
    """``sma(closes[: i + 1], n)`` for every i, with a running sum."""
    out: list[float | None] = [None] * len(closes)
    if n < 1:
        return out
    total = 0.0
    for i, close in enumerate(closes):
        total += close
        if i >= n:
            total -= closes[i - n]
        if i >= n - 1:
            out[i] = total / n
    return out


def ema_series(closes: Sequence[float], n: int) -> list[float | None]:
    """``ema(closes[: i + 1], n)`` for every i: the one recursion, recorded."""
    out: list[float | None] = [None] * len(closes)
    if n < 1 or len(closes) < n:
        return out
    alpha = 2 / (n + 1)
    value = sum(closes[:n]) / n
    out[n - 1] = value
    for i in range(n, len(closes)):
        value = alpha * closes[i] + (1 - alpha) * value
        out[i] = value
    return out


# ----------------------------------------------------------------- the carried state


@dataclass(frozen=True)
class Bar:
    """A completed daily bar as a rule reads it (split-adjusted)."""

    day: date
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True)
class IndicatorState:
    """A symbol's indicators as of its last completed bar, in O(1) space.

    ``ema``/``gain``/``loss`` hold, at index n - 1, EMA(n) and Wilder's average gain and
    loss for RSI(n) **at the bar before the last** (NaN while undefined): stepping them
    by the last close gives the last bar's, and by a live price the session's. ``closes``
    are the last ``WINDOW`` closes through the last bar; ``count`` how many closes the
    whole history has; ``bars`` its last two bars (the last one last).
    """

    symbol: str
    day: date
    count: int
    closes: tuple[float, ...]
    bars: tuple[Bar, ...]
    ema: tuple[float, ...]
    gain: tuple[float, ...]
    loss: tuple[float, ...]
    splits: str  # the split list it was adjusted with: another one means recompute

    def points(self) -> tuple[Point | None, Point]:
        """The bar before the last (None for a one-bar history) and the last bar."""
        before = None
        if self.count >= 2:
            before = Point(self.closes[:-1], self.count - 1, settled=(self.ema, self.gain, self.loss))
        return before, Point(self.closes, self.count, previous=before)

    def stepped(self, bar: Bar) -> IndicatorState:
        """The state one completed bar later (the daily update's incremental step)."""
        _, last = self.points()
        ema_, gain, loss = last.settle()
        return IndicatorState(
            self.symbol,
            bar.day,
            self.count + 1,
            (*self.closes, bar.close)[-WINDOW:],
            (*self.bars, bar)[-2:],
            ema_,
            gain,
            loss,
            self.splits,
        )


class Point:
    """The indicators at one point of a history: ``settled`` ones (from a stored state)
    or computed on demand from the ``previous`` point and this point's close, each
    (indicator, n) once. ``closes``: the last ``WINDOW`` closes through this point;
    ``count``: how many closes the history has through it."""

    def __init__(self, closes: Sequence[float], count: int, previous: Point | None = None, settled=None):
        self.closes = tuple(closes)[-WINDOW:]
        self.count = count
        self.previous = previous
        self.settled = settled
        self._ema: dict[int, float] = {}
        self._averages: dict[int, tuple[float, float]] = {}

    def then(self, close: float) -> Point:
        """The point after this one, at ``close`` (today's live price as the session's bar)."""
        return Point((*self.closes, close), self.count + 1, previous=self)

    @property
    def close(self) -> float:
        return self.closes[-1]

    def sma(self, n: int) -> float | None:
        return sma(self.closes, n) if self.count >= n else None

    def ema(self, n: int) -> float | None:
        value = self._ema_value(n)
        return None if math.isnan(value) else value

    def rsi(self, n: int) -> float | None:
        gain, loss = self._average(n)
        return None if math.isnan(gain) else strength(gain, loss)

    def _ema_value(self, n: int) -> float:
        if self.settled is not None:
            return self.settled[0][n - 1]
        if n not in self._ema:
            if self.count < n:
                value = NAN
            elif self.count == n:  # the seed: the whole history is in the window
                value = sum(self.closes[-n:]) / n
            else:
                alpha = 2 / (n + 1)
                value = alpha * self.close + (1 - alpha) * self._before()._ema_value(n)
            self._ema[n] = value
        return self._ema[n]

    def _average(self, n: int) -> tuple[float, float]:
        if self.settled is not None:
            return self.settled[1][n - 1], self.settled[2][n - 1]
        if n not in self._averages:
            changes = self.count - 1
            if n < 2 or changes < n:
                value = (NAN, NAN)
            elif changes == n:  # the seed: every change so far
                window = self.closes[-(n + 1) :]
                moves = [b - a for a, b in zip(window, window[1:])]
                value = (sum(max(c, 0) for c in moves) / n, sum(max(-c, 0) for c in moves) / n)
            else:
                gain, loss = self._before()._average(n)
                change = self.close - self.closes[-2]
                value = ((gain * (n - 1) + max(change, 0)) / n, (loss * (n - 1) + max(-change, 0)) / n)
            self._averages[n] = value
        return self._averages[n]

    def _before(self) -> Point:
        if self.previous is None:  # a state always carries the point before its last
            raise ValueError("no earlier point to step from")
        return self.previous

    def settle(self) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """Every EMA and average at this point, for a state that starts here."""
        averages = [self._average(n) for n in range(1, MAX_PERIOD + 1)]
        return (
            tuple(self._ema_value(n) for n in range(1, MAX_PERIOD + 1)),
            tuple(a[0] for a in averages),
            tuple(a[1] for a in averages),
        )


def pack(values: Sequence[float]) -> bytes:
    """Floats as the bytes PostgreSQL keeps: machine doubles (every Lambda is little-endian)."""
    return array("d", values).tobytes()


def unpack(raw: bytes) -> tuple[float, ...]:
    values = array("d")
    values.frombytes(bytes(raw))
    return tuple(values)
