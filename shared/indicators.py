"""Technical indicators on daily closes, oldest first: one definition for the
alerts check (a rule's ``close < sma(50)``) and the chart overlays the backtest
API serves, so the line a user sees is the line a rule compares against.

``sma``/``ema``/``rsi`` return the indicator's value at the last element, or
None when there is not enough history. EMA and RSI are computed over the last
``3n + 1`` closes (or all there are, if fewer), so a value does not depend on
how much history happened to be loaded. ``sma_series`` and ``ema_series`` give
the same values at every point of a series in O(len) rather than O(len * n).
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
    """``ema(closes[: i + 1], n)`` for every i.

    While fewer than ``3n + 1`` closes exist, that is the plain recurrence seeded
    with the SMA of the first n. After that the window slides: with beta = 1 - alpha
    and m = 2n + 1 recursion steps, the value is
    ``alpha * sum(beta**k * c[i - k] for k < m) + beta**m * mean(c[i - 3n] .. c[i - 2n - 1])``,
    and both parts slide in O(1) per point.
    """
    out: list[float | None] = [None] * len(closes)
    if n < 1 or len(closes) < n:
        return out
    alpha = 2 / (n + 1)
    beta = 1 - alpha
    m = 2 * n + 1
    beta_m = beta**m
    value = sum(closes[:n]) / n
    out[n - 1] = value
    window = warmup(n)
    for i in range(n, min(len(closes), window)):
        value = alpha * closes[i] + beta * value
        out[i] = value
    if len(closes) <= window:
        return out
    # Sliding parts at i = window - 1 (the first full window), computed directly once.
    i = window - 1
    geometric = sum(beta**k * closes[i - k] for k in range(m))
    seed_sum = sum(closes[i - 3 * n : i - 2 * n])
    for i in range(window, len(closes)):
        geometric = closes[i] + beta * geometric - beta_m * closes[i - m]
        seed_sum += closes[i - 2 * n - 1] - closes[i - 3 * n - 1]
        out[i] = alpha * geometric + beta_m * seed_sum / n
    return out
