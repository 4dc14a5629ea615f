"""Latest prices: Polygon's ticker snapshot behind a shared Redis cache.

Used by the quote service for ``GET /api/quote`` and by the alerts check, so both
share one cache, one single-flight and one upstream budget.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from shared import polygon
from shared.cache import JsonStore, LocalBudget, RedisBudget, RedisLock, loads_json
from shared.config import Settings
from shared.errors import ApiError, not_found, unavailable
from shared.health import DependencyHealth
from shared.polygon import BudgetExceeded, UpstreamError

log = logging.getLogger(__name__)

HIT, MISS, STALE, BYPASS = "hit", "miss", "stale", "bypass"
# After an upstream failure for a symbol, answer from what we have for this
# long instead of asking again: waiters stop waiting, and a failing upstream
# is not asked once per request.
FAIL_HOLD_S = 2.0


# --------------------------------------------------------------------------
# Parsing Polygon's snapshot


def _positive(value) -> float | None:
    """Polygon zero-fills the snapshot from 03:30 ET until trading: 0 means missing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _iso_utc(epoch_s: float | None) -> str | None:
    if not epoch_s:
        return None
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_snapshot(symbol: str, ticker: dict) -> dict:
    """The price, where it came from and the vendor's own time of it."""
    last_trade = ticker.get("lastTrade") or {}
    minute = ticker.get("min") or {}
    day = ticker.get("day") or {}
    prev_day = ticker.get("prevDay") or {}
    updated_ns = _positive(ticker.get("updated"))

    # (source, price, vendor timestamp in seconds)
    candidates = [
        ("last_trade", _positive(last_trade.get("p")), (_positive(last_trade.get("t")) or 0) / 1e9),
        ("minute", _positive(minute.get("c")), (_positive(minute.get("t")) or 0) / 1e3),
        ("day", _positive(day.get("c")), (updated_ns or 0) / 1e9),
        ("prev_close", _positive(prev_day.get("c")), (updated_ns or 0) / 1e9),
    ]
    found = next((c for c in candidates if c[1] is not None), None)
    if found is None:
        raise UpstreamError(polygon.BAD_RESPONSE, f"snapshot for {symbol} carries no price at all")
    source, price, as_of = found

    prev_close = _positive(prev_day.get("c"))
    change = round(price - prev_close, 6) if prev_close else None
    change_pct = round(change / prev_close * 100, 4) if prev_close else None
    day_bar = None
    if _positive(day.get("c")) is not None:
        day_bar = {
            "open": _positive(day.get("o")),
            "high": _positive(day.get("h")),
            "low": _positive(day.get("l")),
            "close": _positive(day.get("c")),
            "volume": int(float(day.get("v") or 0)),
        }
    return {
        "symbol": symbol,
        "price": price,
        "as_of": _iso_utc(as_of),
        "source": source,
        "prev_close": prev_close,
        "change": change,
        "change_pct": change_pct,
        "day": day_bar,
    }


# --------------------------------------------------------------------------
# The cached quote path


@dataclass
class QuoteResult:
    quote: dict
    status: str  # hit | miss | stale | bypass
    age_s: float
    stale: bool = False


class QuoteService:
    """Answers quotes from Redis when fresh, otherwise from Polygon once per
    symbol across all processes, within the shared upstream budget."""

    def __init__(self, settings: Settings, redis, gateway, clock=time.time, executor=None):
        self.settings = settings
        self.gateway = gateway
        self.clock = clock
        self.store = JsonStore(redis, "quote:")
        self.failures = JsonStore(redis, "quote:fail:")
        self.locks = RedisLock(redis, "quote:lock:")
        self.budget = RedisBudget(redis, "polygon:budget", settings.polygon_max_calls_per_min, clock=clock)
        self.local_budget = LocalBudget(settings.polygon_max_calls_per_min, clock=clock)
        self.health = DependencyHealth("Redis")
        self.lock_ttl_s = polygon.deadline_s(settings) + 1.0
        self._executor = executor

    # ----- public

    def get(self, symbol: str) -> QuoteResult:
        results, errors = self.get_many([symbol])
        if symbol in errors:
            raise errors[symbol]
        return results[symbol]

    def get_many(self, symbols: list[str]) -> tuple[dict[str, QuoteResult], dict[str, ApiError]]:
        """Quotes for many symbols: one Redis round trip for the cached ones, the
        misses fetched concurrently. One symbol's failure never fails the others."""
        results: dict[str, QuoteResult] = {}
        errors: dict[str, ApiError] = {}
        cached = self._read(symbols)
        misses = []
        for symbol in symbols:
            if cached is None:
                misses.append(symbol)
                continue
            entry = cached.get(symbol)
            answer = self._fresh(symbol, entry)
            if answer is None:
                misses.append(symbol)
            elif isinstance(answer, ApiError):
                errors[symbol] = answer
            else:
                results[symbol] = answer

        def resolve(symbol):
            previous = cached.get(symbol) if cached else None
            try:
                return symbol, self._resolve(symbol, previous, redis_ok=cached is not None)
            except ApiError as exc:
                return symbol, exc

        if len(misses) == 1:
            outcomes = [resolve(misses[0])]
        else:
            outcomes = list(self._pool().map(resolve, misses))
        for symbol, outcome in outcomes:
            if isinstance(outcome, ApiError):
                errors[symbol] = outcome
            else:
                results[symbol] = outcome
        return results, errors

    def decorate(self, result: QuoteResult) -> dict:
        """The response body of one quote."""
        body = dict(result.quote)
        body["stale"] = result.stale
        body["delayed"] = self.settings.polygon_delay_min > 0
        body["delay_min"] = self.settings.polygon_delay_min
        body["cache"] = {"status": result.status, "age_s": round(result.age_s, 3)}
        return body

    def max_age_s(self, result: QuoteResult) -> int:
        """How long a client may keep this answer: the rest of the TTL, 0 if stale."""
        if result.stale:
            return 0
        return max(0, int(self.settings.quote_ttl_s - result.age_s))

    # ----- internals

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="quote-miss")
        return self._executor

    def _read(self, symbols: list[str]) -> dict[str, dict | None] | None:
        """One MGET for all symbols, or None when Redis is unusable."""
        if not self.health.available():
            return None
        try:
            return self.store.get_many(symbols)
        except Exception as exc:  # noqa: BLE001 - any Redis failure means: bypass it
            if not _is_redis_error(exc):
                raise
            self.health.failed(exc)
            return None

    def _fresh(self, symbol: str, entry: dict | None):
        """A cached answer still inside its TTL (a quote or a remembered 404), else None."""
        if not entry:
            return None
        age = self.clock() - float(entry.get("t", 0))
        if entry.get("missing"):
            if age < self.settings.quote_not_found_ttl_s:
                return _unknown_symbol(symbol)
            return None
        if 0 <= age < self.settings.quote_ttl_s and entry.get("q"):
            return QuoteResult(entry["q"], HIT, age)
        return None

    def _resolve(self, symbol: str, previous: dict | None, redis_ok: bool) -> QuoteResult:
        if not redis_ok:
            return self._fetch(symbol, previous, self.local_budget, store=False)
        try:
            return self._single_flight(symbol, previous)
        except Exception as exc:  # noqa: BLE001
            if not _is_redis_error(exc):
                raise
            self.health.failed(exc)
            return self._fetch(symbol, previous, self.local_budget, store=False)

    def _single_flight(self, symbol: str, previous: dict | None) -> QuoteResult:
        deadline = time.monotonic() + self.settings.quote_wait_s
        pause = 0.005
        while True:
            token = self.locks.acquire(symbol, self.lock_ttl_s)
            if token is not None:
                try:
                    # Someone may have filled the cache between our read and the lock.
                    entry, failure = self._peek(symbol)
                    answer = self._fresh(symbol, entry)
                    if isinstance(answer, ApiError):
                        raise answer
                    if answer is not None:
                        return answer
                    if failure is not None:
                        return self._fallback(symbol, entry or previous, _failure_error(failure))
                    return self._fetch(symbol, entry or previous, self.budget, store=True)
                finally:
                    self.locks.release(symbol, token)
            # Another process is fetching this symbol: wait for its result.
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            entry, failure = self._peek(symbol)
            answer = self._fresh(symbol, entry)
            if isinstance(answer, ApiError):
                raise answer
            if answer is not None:
                # We asked for it before it was there: to this caller it was a miss.
                return QuoteResult(answer.quote, MISS, answer.age_s)
            if failure is not None:
                return self._fallback(symbol, entry or previous, _failure_error(failure))
            if time.monotonic() >= deadline:
                return self._fallback(
                    symbol,
                    entry or previous,
                    unavailable(
                        "upstream_slow", f"the quote for {symbol} is still being fetched; try again shortly", 1
                    ),
                )

    def _peek(self, symbol: str) -> tuple[dict | None, dict | None]:
        pipe = self.store.redis.pipeline(transaction=False)
        pipe.get(self.store.key(symbol))
        pipe.get(self.failures.key(symbol))
        entry, failure = (loads_json(v) for v in pipe.execute())
        if failure is not None and self.clock() - float(failure.get("t", 0)) >= FAIL_HOLD_S:
            failure = None
        return entry, failure

    def _fetch(self, symbol: str, previous: dict | None, budget, store: bool) -> QuoteResult:
        try:
            ticker = polygon.call(lambda: self.gateway.snapshot(symbol), budget, self.settings)
            quote = parse_snapshot(symbol, ticker)
        except BudgetExceeded as exc:
            return self._fallback(
                symbol,
                previous,
                ApiError(
                    503,
                    "upstream_budget_exhausted",
                    f"the upstream call allowance ({self.settings.polygon_max_calls_per_min}/min) is spent "
                    f"and there is no cached quote for {symbol}",
                    retry_after_s=exc.retry_after_s,
                ),
            )
        except UpstreamError as exc:
            if exc.kind == polygon.NOT_FOUND:
                if store:
                    self.store.put(symbol, {"missing": True, "t": self.clock()}, self.settings.quote_not_found_ttl_s)
                raise _unknown_symbol(symbol) from None
            if store:
                self.failures.put(symbol, {"kind": exc.kind, "message": exc.message, "t": self.clock()}, FAIL_HOLD_S)
            return self._fallback(symbol, previous, _upstream_error(exc))
        if store:
            self.store.put(symbol, {"q": quote, "t": self.clock()}, self.settings.quote_stale_max_s)
            return QuoteResult(quote, MISS, 0.0)
        return QuoteResult(quote, BYPASS, 0.0)

    def _fallback(self, symbol: str, previous: dict | None, error: ApiError) -> QuoteResult:
        """The last known quote marked stale, or the error when there is none."""
        if previous and previous.get("q"):
            age = self.clock() - float(previous.get("t", 0))
            if age <= self.settings.quote_stale_max_s:
                log.info("serving stale quote for %s (%.0fs old): %s", symbol, age, error.message)
                return QuoteResult(previous["q"], STALE, age, stale=True)
        raise error


def _unknown_symbol(symbol: str) -> ApiError:
    return not_found("unknown_symbol", f"Polygon does not know the symbol {symbol}")


def _upstream_error(exc: UpstreamError) -> ApiError:
    if exc.kind == polygon.RATE_LIMITED:
        return unavailable("upstream_rate_limited", "the market data vendor is rate limiting us; try again shortly", 15)
    if exc.kind in (polygon.AUTH, polygon.NOT_ENTITLED):
        return unavailable("upstream_refused", f"the market data vendor refused the request: {exc.message}", 60)
    return unavailable("upstream_unavailable", f"the market data vendor is unavailable: {exc.message}", 5)


def _failure_error(failure: dict) -> ApiError:
    return _upstream_error(UpstreamError(str(failure.get("kind")), str(failure.get("message", ""))))


def _is_redis_error(exc: BaseException) -> bool:
    import redis

    return isinstance(exc, (redis.RedisError, OSError))
