"""Latest prices: Polygon's ticker snapshot behind a shared Redis cache.

Used by the quote service for ``GET /api/quote`` and by the alerts check, so both
share one cache, one single-flight and one upstream budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from shared import observability, polygon
from shared.cache import BUDGET_KEY, SLOT, JsonStore, LocalBudget, RedisBudget, RedisLock, RefreshTracker, loads_json
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
# Every code a quote can fail with, one symbol at a time (the batch answer lists them per symbol).
UPSTREAM_FAILURE_CODES = (
    "upstream_unavailable",
    "upstream_rate_limited",
    "upstream_refused",
    "upstream_budget_exhausted",
    "upstream_slow",
)
QUOTE_FAILURE_CODES = ("unknown_symbol", *UPSTREAM_FAILURE_CODES)
# How far behind a delayed plan's snapshots are, when POLYGON_DELAY_MIN does not say.
DELAYED_PLAN_MIN = 15
# When a 429 says nothing about how long to wait.
DEFAULT_RATE_LIMIT_WAIT_S = 15


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


def parse_snapshot(symbol: str, ticker: dict, now: float | None = None) -> dict:
    """The price, where it came from and when that price was the price (``as_of``):

    - ``last_trade``: the trade's own time (``lastTrade.t``, ns);
    - ``minute``: the end of the minute bar whose close it is (``min.t`` is the
      minute's start, ms), or the snapshot's update time if that is earlier;
    - ``day``: the snapshot's update time (``updated``, ns): the day's close so far;
    - ``prev_close``: the previous session's close, 16:00 New York; not the update
      time (after the 03:30 clear that is 0, and the price is older than it anyway).
    """
    last_trade = ticker.get("lastTrade") or {}
    minute = ticker.get("min") or {}
    day = ticker.get("day") or {}
    prev_day = ticker.get("prevDay") or {}
    updated_s = (_positive(ticker.get("updated")) or 0) / 1e9

    def minute_end():
        start = (_positive(minute.get("t")) or 0) / 1e3
        return min(start + 60, updated_s) if start and updated_s else (start + 60 if start else 0)

    def previous_close():
        from shared.market_calendar import last_close_before

        reference = datetime.fromtimestamp(updated_s or (now if now is not None else time.time()), tz=UTC)
        return last_close_before(reference).timestamp()

    # (source, price, when it was the price: seconds since the epoch, computed if chosen)
    candidates = [
        ("last_trade", _positive(last_trade.get("p")), lambda: (_positive(last_trade.get("t")) or 0) / 1e9),
        ("minute", _positive(minute.get("c")), minute_end),
        ("day", _positive(day.get("c")), lambda: updated_s),
        ("prev_close", _positive(prev_day.get("c")), previous_close),
    ]
    found = next((c for c in candidates if c[1] is not None), None)
    if found is None:
        raise UpstreamError(polygon.BAD_RESPONSE, f"snapshot for {symbol} carries no price at all")
    source, price, when = found
    assert price is not None  # chosen for having one
    as_of = when()

    prev_close = _positive(prev_day.get("c"))
    change = round(price - prev_close, 6) if prev_close else None
    change_pct = round(change / prev_close * 100, 4) if prev_close and change is not None else None
    day_bar = None
    if _positive(day.get("c")) is not None:
        day_bar = {
            "open": _positive(day.get("o")),
            "high": _positive(day.get("h")),
            "low": _positive(day.get("l")),
            "close": _positive(day.get("c")),
            # A float, as the vendor's: volumes can be fractional.
            "volume": float(day.get("v") or 0),
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
        # The vendor said so ("status": "DELAYED"): a delayed plan's snapshot.
        "delayed": bool(ticker.get(polygon.DELAYED)),
    }


# --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What the cache holds for a symbol: its quote and when it was stored, or that the
    vendor does not know the symbol. In Redis as JSON with the short keys it has always
    had (``q``, ``t``, ``missing``), so entries written before stay readable."""

    stored_at: float
    quote: dict | None = None
    missing: bool = False

    @classmethod
    def read(cls, raw: dict | None) -> CacheEntry | None:
        if not raw:
            return None
        return cls(float(raw.get("t", 0)), raw.get("q"), bool(raw.get("missing")))

    def to_json(self) -> dict:
        return {"missing": True, "t": self.stored_at} if self.missing else {"q": self.quote, "t": self.stored_at}


@dataclass(frozen=True, slots=True)
class FailureMark:
    """A vendor failure for a symbol, remembered for ``FAIL_HOLD_S`` so that the
    processes waiting on its fetch answer at once: the kind, and what the 503 says."""

    kind: str
    message: str
    public: str | None
    retry_after_s: float | None
    at: float

    @classmethod
    def read(cls, raw: dict | None) -> FailureMark | None:
        if not raw:
            return None
        return cls(
            str(raw.get("kind")),
            str(raw.get("message", "")),
            raw.get("public"),
            raw.get("retry_after_s"),
            float(raw.get("t", 0)),
        )

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "public": self.public,
            "retry_after_s": self.retry_after_s,
            "t": self.at,
        }

    def error(self) -> ApiError:
        return _upstream_error(UpstreamError(self.kind, self.message, self.retry_after_s, self.public))


# The cached quote path


@dataclass
class QuoteResult:
    quote: dict
    status: str  # hit | miss | stale | bypass
    age_s: float
    stale: bool = False


class QuoteService:
    """Answers quotes from Redis when fresh, otherwise from Polygon: each symbol is
    fetched once across all processes (a per-symbol lock), the misses of one
    request in one upstream call per chunk of ``quote_batch_chunk`` tickers, and
    the spare room of each such call refreshes hot quotes about to expire.
    Every upstream call, not every symbol, is charged to the shared budget."""

    # How often one process records that a symbol was asked for again.
    HOT_MARK_EVERY_S = 30.0

    def __init__(self, settings: Settings, redis, gateway, clock=time.time, executor=None):
        self.settings = settings
        self.gateway = gateway
        self.clock = clock
        self.redis = redis
        # One hash slot for every key (SLOT): MGETs, pipelines and scripts across them
        # work on a cluster-mode server as on a single node.
        self.store = JsonStore(redis, f"{SLOT}quote:")
        self.failures = JsonStore(redis, f"{SLOT}quote:fail:")
        self.locks = RedisLock(redis, f"{SLOT}quote:lock:")
        self.refresh = RefreshTracker(
            redis,
            f"{SLOT}quote:hot",
            f"{SLOT}quote:expiry",
            f"{SLOT}quote:lock:",
            settings.quote_hot_s,
            settings.quote_refresh_ahead_s,
        )
        self.budget = RedisBudget(redis, BUDGET_KEY, settings.polygon_max_calls_per_min, clock=clock)
        self.local_budget = LocalBudget(settings.polygon_max_calls_per_min, clock=clock)
        self.health = DependencyHealth("Redis")
        self.chunk = settings.quote_batch_chunk
        # One upstream call for the chunk, then one to confirm a symbol it left out.
        self.lock_ttl_s = 2 * polygon.deadline_s(settings) + 1.0
        self._executor = executor
        self._hot_marked: dict[str, float] = {}

    # ----- public

    def get(self, symbol: str) -> QuoteResult:
        results, errors = self.get_many([symbol])
        if symbol in errors:
            raise errors[symbol]
        return results[symbol]

    def get_many(self, symbols: list[str]) -> tuple[dict[str, QuoteResult], dict[str, ApiError]]:
        """Quotes for many symbols: one Redis round trip for the cached ones, the
        misses in one upstream call per chunk. One symbol's failure never fails
        the others."""
        results: dict[str, QuoteResult] = {}
        errors: dict[str, ApiError] = {}
        cached = self._read(symbols)
        misses = []
        for symbol in symbols:
            if cached is None:
                misses.append(symbol)
                continue
            answer = self._fresh(symbol, cached.get(symbol))
            if answer is None:
                misses.append(symbol)
            elif isinstance(answer, ApiError):
                errors[symbol] = answer
            else:
                results[symbol] = answer
        if misses:
            previous = cached or {}
            if cached is None:
                outcomes = self._fetch(misses, [], previous, self.local_budget, store=False)
            else:
                try:
                    outcomes = self._resolve(misses, previous)
                except Exception as exc:  # noqa: BLE001 - a Redis failure mid-way: answer without it
                    if not _is_redis_error(exc):
                        raise
                    self.health.failed(exc)
                    outcomes = self._fetch(misses, [], previous, self.local_budget, store=False)
            for symbol, outcome in outcomes.items():
                if isinstance(outcome, ApiError):
                    errors[symbol] = outcome
                else:
                    results[symbol] = outcome
        for result in results.values():
            observability.count(f"quotes_{result.status}")
        if errors:
            observability.count("quotes_error", len(errors))
        return results, errors

    def decorate(self, result: QuoteResult) -> dict:
        """The response body of one quote."""
        body = dict(result.quote)
        body["stale"] = result.stale
        # Delayed when the vendor's answer said so, or the plan is set as delayed; the
        # delayed plans (Starter, Developer) are 15 minutes behind.
        delayed = bool(body.get("delayed")) or self.settings.polygon_delay_min > 0
        body["delayed"] = delayed
        body["delay_min"] = self.settings.polygon_delay_min or (DELAYED_PLAN_MIN if delayed else 0)
        body["cache"] = {"status": result.status, "age_s": round(result.age_s, 3)}
        return body

    def max_age_s(self, result: QuoteResult) -> int:
        """How long a client may keep this answer: the rest of the TTL, 0 if stale."""
        if result.stale:
            return 0
        return max(0, int(self.settings.quote_ttl_s - result.age_s))

    # ----- reading

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="quote-miss")
        return self._executor

    def _read(self, symbols: list[str]) -> dict[str, CacheEntry | None] | None:
        """One MGET for all symbols (with the hot marks due, in the same round
        trip), or None when Redis is unusable."""
        if not self.health.available():
            return None
        now = self.clock()
        due = [s for s in symbols if now - self._hot_marked.get(s, -1e18) >= self.HOT_MARK_EVERY_S]
        try:
            if not due:
                return {s: CacheEntry.read(v) for s, v in self.store.get_many(symbols).items()}
            pipe = self.redis.pipeline(transaction=False)
            pipe.mget([self.store.key(s) for s in symbols])
            self.refresh.mark_hot(pipe, due, now)
            raw = pipe.execute()[0]
            for symbol in due:
                self._hot_marked[symbol] = now
            return {s: CacheEntry.read(loads_json(v)) for s, v in zip(symbols, raw, strict=False)}
        except Exception as exc:  # noqa: BLE001 - any Redis failure means: bypass it
            if not _is_redis_error(exc):
                raise
            self.health.failed(exc)
            return None

    def _fresh(self, symbol: str, entry: CacheEntry | None):
        """A cached answer still inside its TTL (a quote or a remembered 404), else None."""
        if entry is None:
            return None
        age = self.clock() - entry.stored_at
        if entry.missing:
            if age < self.settings.quote_not_found_ttl_s:
                return _unknown_symbol(symbol)
            return None
        if 0 <= age < self.settings.quote_ttl_s and entry.quote:
            return QuoteResult(entry.quote, HIT, age)
        return None

    def _peek(self, symbols: list[str]) -> tuple[dict, dict]:
        """Cached entries and recent failure markers of ``symbols``, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.mget([self.store.key(s) for s in symbols])
        pipe.mget([self.failures.key(s) for s in symbols])
        entries_raw, failures_raw = pipe.execute()
        now = self.clock()
        entries, failures = {}, {}
        for symbol, entry, failure in zip(symbols, entries_raw, failures_raw, strict=False):
            entries[symbol] = CacheEntry.read(loads_json(entry))
            mark = FailureMark.read(loads_json(failure))
            failures[symbol] = mark if mark is not None and now - mark.at < FAIL_HOLD_S else None
        return entries, failures

    # ----- single-flight across processes

    def _resolve(self, misses: list[str], cached: dict) -> dict:
        """Fetch the misses this process may fetch; wait for the ones another
        process is fetching already (each symbol once, whoever asks)."""
        outcomes: dict = {}
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.settings.quote_wait_s
        pause = 0.005
        pending = list(misses)
        while pending:
            owned = self.locks.acquire_many(pending, self.lock_ttl_s, token)
            if owned:
                outcomes.update(self._lead(owned, cached, token))
            waiting = [s for s in pending if s not in outcomes]
            if not waiting:
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            entries, failures = self._peek(waiting)
            pending = []
            for symbol in waiting:
                previous = entries[symbol] or cached.get(symbol)
                answer = self._fresh(symbol, entries[symbol])
                if isinstance(answer, ApiError):
                    outcomes[symbol] = answer
                elif answer is not None:
                    # We asked for it before it was there: to this caller it was a miss.
                    outcomes[symbol] = QuoteResult(answer.quote, MISS, answer.age_s)
                elif failures[symbol] is not None:
                    outcomes[symbol] = self._stale_or(symbol, previous, failures[symbol].error())
                elif time.monotonic() >= deadline:
                    outcomes[symbol] = self._stale_or(
                        symbol,
                        previous,
                        unavailable(
                            "upstream_slow",
                            f"the quote for {symbol} is still being fetched; try again shortly",
                            1,
                            "vendor",
                        ),
                    )
                else:
                    pending.append(symbol)  # its fetcher may be done (or gone): try the lock again
        return outcomes

    def _lead(self, owned: list[str], cached: dict, token: str) -> dict:
        """Fetch the symbols whose locks this process holds, with piggyback room filled."""
        outcomes: dict = {}
        extras: list[str] = []
        try:
            # Someone may have filled the cache between our read and the lock.
            entries, failures = self._peek(owned)
            fetch = []
            for symbol in owned:
                answer = self._fresh(symbol, entries[symbol])
                if answer is not None:
                    outcomes[symbol] = answer
                elif failures[symbol] is not None:
                    outcomes[symbol] = self._stale_or(
                        symbol, entries[symbol] or cached.get(symbol), failures[symbol].error()
                    )
                else:
                    fetch.append(symbol)
            if fetch:
                room = -len(fetch) % self.chunk
                candidates = [s for s in self.refresh.candidates(room, self.clock()) if s not in owned]
                extras = self.locks.acquire_many(candidates, self.lock_ttl_s, token)
                previous = {s: entries[s] or cached.get(s) for s in fetch}
                outcomes.update(self._fetch(fetch, extras, previous, self.budget, store=True))
        finally:
            self.locks.release_many(owned + extras, token)
        return outcomes

    # ----- upstream

    def _call(self, names: list[str], budget) -> tuple[dict[str, dict], set[str]]:
        """One upstream request for ``names``: their tickers, and the names it
        confirmed unknown (a one-ticker request answers 404; a many-ticker one
        only leaves a name out)."""
        if len(names) == 1:
            try:
                ticker = polygon.call(lambda: self.gateway.snapshot(names[0]), budget, self.settings)
            except UpstreamError as exc:
                if exc.kind == polygon.NOT_FOUND:
                    return {}, {names[0]}
                raise
            return {names[0]: ticker}, set()
        return polygon.call(lambda: self.gateway.snapshots(names), budget, self.settings), set()

    def _map(self, fn, items: list) -> list:
        if len(items) <= 1:
            return [fn(item) for item in items]
        # Pool threads start with an empty context: each call counts into the request's.
        return list(self._pool().map(observability.carry(fn), items))

    def _fetch(self, needed: list[str], extras: list[str], previous: dict, budget, store: bool) -> dict:
        """``needed`` (and ``extras``, refreshed along) in one upstream call per chunk.

        Returns an answer for each needed symbol. A symbol the answer leaves out is
        confirmed with a one-ticker call; ``extras`` that fail are left as they are.
        """
        wanted = set(needed)
        names = needed + extras
        chunks = [names[i : i + self.chunk] for i in range(0, len(names), self.chunk)]

        def attempt(chunk):
            try:
                return self._call(chunk, budget)
            except (UpstreamError, BudgetExceeded) as exc:
                return exc

        outcomes: dict = {}
        quotes: dict[str, dict] = {}
        missing: set[str] = set()
        failed: dict[str, UpstreamError] = {}

        def absorb(chunk, got) -> list[str]:
            """Take in one call's answer; returns the needed symbols it left out."""
            if isinstance(got, BudgetExceeded):
                for symbol in wanted.intersection(chunk):
                    outcomes[symbol] = self._stale_or(symbol, previous.get(symbol), self._budget_error(symbol, got))
                return []
            if isinstance(got, UpstreamError):
                failed.update((s, got) for s in wanted.intersection(chunk))
                return []
            tickers, unknown = got
            missing.update(unknown)
            left_out = []
            for symbol in chunk:
                if symbol in tickers:
                    try:
                        quotes[symbol] = parse_snapshot(symbol, tickers[symbol], self.clock())
                    except UpstreamError as exc:
                        if symbol in wanted:
                            failed[symbol] = exc
                elif symbol in wanted and symbol not in unknown:
                    left_out.append(symbol)
            return left_out

        confirm = []
        for chunk, got in zip(chunks, self._map(attempt, chunks), strict=True):
            confirm += absorb(chunk, got)
        # One ticker per call: its answer is the ticker, or a 404 that says unknown.
        singles = [[symbol] for symbol in confirm]
        for chunk, got in zip(singles, self._map(attempt, singles), strict=True):
            absorb(chunk, got)

        now = self.clock()
        if store:
            pipe = self.redis.pipeline(transaction=False)
            for symbol, quote in quotes.items():
                self.store.put(symbol, CacheEntry(now, quote).to_json(), self.settings.quote_stale_max_s, pipe)
            self.refresh.set_expiry(pipe, {s: now + self.settings.quote_ttl_s for s in quotes})
            for symbol in missing:
                entry = CacheEntry(now, missing=True)
                self.store.put(symbol, entry.to_json(), self.settings.quote_not_found_ttl_s, pipe)
            for symbol, exc in failed.items():
                mark = FailureMark(exc.kind, exc.message, exc.public, exc.retry_after_s, now)
                self.failures.put(symbol, mark.to_json(), FAIL_HOLD_S, pipe)
            pipe.execute()
        for symbol in needed:
            if symbol in quotes:
                outcomes[symbol] = QuoteResult(quotes[symbol], MISS if store else BYPASS, 0.0)
            elif symbol in missing:
                outcomes[symbol] = _unknown_symbol(symbol)
            elif symbol in failed:
                outcomes[symbol] = self._stale_or(symbol, previous.get(symbol), _upstream_error(failed[symbol]))
        return outcomes

    def _budget_error(self, symbol: str, exc: BudgetExceeded) -> ApiError:
        return unavailable(
            "upstream_budget_exhausted",
            f"the upstream call allowance ({self.settings.polygon_max_calls_per_min}/min) is spent "
            f"and there is no cached quote for {symbol}",
            exc.retry_after_s,
            "vendor",
        )

    def _stale_or(self, symbol: str, previous: CacheEntry | None, error: ApiError):
        """The last known quote marked stale, or the error when there is none."""
        if previous is not None and previous.quote:
            age = self.clock() - previous.stored_at
            if age <= self.settings.quote_stale_max_s:
                log.info("serving stale quote for %s (%.0fs old): %s", symbol, age, error.message)
                return QuoteResult(previous.quote, STALE, age, stale=True)
        return error


def _unknown_symbol(symbol: str) -> ApiError:
    return not_found("unknown_symbol", f"Polygon does not know the symbol {symbol}")


def _upstream_error(exc: UpstreamError) -> ApiError:
    """The 503 for a vendor failure: what kind it was, never the vendor's address (the log has the detail)."""
    if exc.kind == polygon.RATE_LIMITED:
        # The vendor's own Retry-After when it gave one.
        wait = exc.retry_after_s if exc.retry_after_s is not None else DEFAULT_RATE_LIMIT_WAIT_S
        return unavailable(
            "upstream_rate_limited", "the market data vendor is rate limiting us; try again shortly", wait, "vendor"
        )
    if exc.kind in (polygon.AUTH, polygon.NOT_ENTITLED):
        return unavailable(
            "upstream_refused", f"the market data vendor refused the request: {exc.public}", 60, "vendor"
        )
    return unavailable("upstream_unavailable", f"the market data vendor is unavailable: {exc.public}", 5, "vendor")


def _is_redis_error(exc: BaseException) -> bool:
    import redis

    # The cluster client refuses some commands itself, with an exception of its own.
    return isinstance(exc, (redis.RedisError, OSError, redis.exceptions.RedisClusterException))
