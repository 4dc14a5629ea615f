"""Technical indicators on daily closes, oldest first.

Each returns the indicator's value at the last element, or None when there is
not enough history. EMA and RSI are computed over the last ``3n + 1`` closes
(or all there are, if fewer), so a value does not depend on how much history
happened to be loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_PERIOD = 200


def warmup(n: int) -> int:
    """How many closes ``ema(n)`` and ``rsi(n)`` look at."""
    return 3 * n + 1


def sma(closes: Sequence[float], n: int) -> float | None:
    if n < 1 or len(closes) < n:
        return None
    return sum(closes[-n:]) / n


def ema(closes: Sequence[float], n: int) -> float | None:
    """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first n closes."""
    if n < 1 or len(closes) < n:
        return None
    window = closes[-warmup(n) :]
    alpha = 2 / (n + 1)
    value = sum(window[:n]) / n
    for close in window[n:]:
        value = alpha * close + (1 - alpha) * value
    return value


def rsi(closes: Sequence[float], n: int) -> float | None:
    """Wilder's relative strength index: averages of gains and losses, smoothed by 1/n."""
    if n < 1 or len(closes) < n + 1:
        return None
    window = closes[-warmup(n) :]
    changes = [b - a for a, b in zip(window, window[1:])]
    gain = sum(max(c, 0) for c in changes[:n]) / n
    loss = sum(max(-c, 0) for c in changes[:n]) / n
    for change in changes[n:]:
        gain = (gain * (n - 1) + max(change, 0)) / n
        loss = (loss * (n - 1) + max(-change, 0)) / n
    if loss == 0:
        return 100.0 if gain > 0 else 50.0
    return 100 - 100 / (1 + gain / loss)
