"""Replayed request traces (a Zipf-distributed watchlist, the dashboard's own): vendor calls
and hit rates as they grow with users and symbols."""

from __future__ import annotations

import random
import time

from devtools.bench.common import verdict
from devtools.doubles.fake_polygon import FakePolygon


def replay(service, fake, now: list, trace, ttl: float, batch: bool) -> dict:
    """Replay ``trace`` (simulated time, symbols or lists of symbols) through ``service``.

    Freshness is checked from the fake's own log of what each upstream request
    carried, not from the service's bookkeeping: an answer given as fresh (a hit
    or a miss) must be of a quote fetched less than ``ttl`` simulated seconds ago.
    """
    fake.ticker_log = []
    fetched_at: dict[str, float] = {}
    seen = 0
    answers = stale_fresh = 0
    started = time.perf_counter()
    for t, asked in trace:
        now[0] = 1_000_000.0 + t
        symbols = asked if batch else [asked]
        found, _ = service.get_many(symbols)
        log = fake.ticker_log
        for tickers in log[seen:]:
            for symbol in tickers:
                fetched_at[symbol] = now[0]
        seen = len(log)
        for symbol, result in found.items():
            answers += 1
            if result.status in ("hit", "miss") and now[0] - fetched_at.get(symbol, -1e18) >= ttl:
                stale_fresh += 1
    fake.ticker_log = None
    return {
        "calls": len(log),
        "tickers": sum(len(x) for x in log),
        "answers": answers,
        "stale_as_fresh": stale_fresh,
        "wall": time.perf_counter() - started,
    }


def quote_service_for(redis_url: str, fake: FakePolygon, ttl: float, now: list):
    from shared.cache import connect
    from shared.config import Settings
    from shared.polygon import PolygonGateway, make_client
    from shared.quotes import QuoteService

    settings = Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "POLYGON_BASE_URL": fake.url,
            "POLYGON_MAX_CALLS_PER_MIN": "100000",
            "QUOTE_TTL_S": str(ttl),
        }
    )
    return QuoteService(settings, connect(redis_url, 1.0), PolygonGateway(make_client(settings)), clock=lambda: now[0])


def list_symbols(fake: FakePolygon, symbols: list[str]) -> None:
    for s in symbols:
        fake.set_snapshot(
            s,
            {
                "ticker": s,
                "updated": 1,
                "prevDay": {"c": 10.0},
                "lastTrade": {"p": 10.5, "t": 1_700_000_000_000_000_000},
            },
        )


def bench_zipf(redis_url: str, fake: FakePolygon, raw) -> None:
    symbols = [f"Z{i:03d}" for i in range(500)]
    list_symbols(fake, symbols)
    rate, minutes, ttl = 20.0, 10, 60.0
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(symbols))]
    rng = random.Random(42)
    trace = [(i / rate, rng.choices(symbols, weights)[0]) for i in range(int(rate * 60 * minutes))]

    perfect, fetched_at = 0, {}
    for t, s in trace:
        if s not in fetched_at or t - fetched_at[s] >= ttl:
            perfect += 1
            fetched_at[s] = t

    raw.flushdb()
    fake.reset_calls()
    now = [1_000_000.0]
    got = replay(quote_service_for(redis_url, fake, ttl, now), fake, now, trace, ttl, batch=False)
    calls = got["calls"]
    cut = 100 * (1 - calls / len(trace))
    print(
        f"Zipf(1.1) over 500 symbols, {rate:.0f} req/s for {minutes} simulated minutes "
        f"({len(trace)} requests, {got['wall']:.1f}s wall): {calls} upstream calls carrying {got['tickers']} tickers; "
        f"cut vs no cache {cut:.1f}% (goal >= 95%: {verdict(cut >= 95)}); a per-symbol {ttl:.0f}s cache at best makes "
        f"{perfect} ({100 * (1 - perfect / len(trace)):.1f}%)"
    )
    distinct = len({s for _, s in trace})
    print(
        f"  floor: {distinct} distinct symbols, each of which costs a call the first time it is asked for "
        f"(a symbol never seen cannot ride along); the other {calls - distinct} calls kept them fresh"
    )
    print(
        f"  answers given as fresh that were {ttl:.0f}s old or more: {got['stale_as_fresh']} of {got['answers']} "
        f"(goal 0: {verdict(got['stale_as_fresh'] == 0)})"
    )


def bench_dashboard_trace(redis_url: str, fake: FakePolygon, raw) -> None:
    """200 users, each polling a 20-symbol watchlist from 300 symbols every 60 s, with batch requests."""
    symbols = [f"W{i:03d}" for i in range(300)]
    list_symbols(fake, symbols)
    rng = random.Random(9)
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(symbols))]
    users, minutes, period, ttl = 200, 10, 60.0, 60.0
    watchlists = []
    for _ in range(users):
        chosen: list[str] = []
        while len(chosen) < 20:  # popular symbols are on many lists
            pick = rng.choices(symbols, weights)[0]
            if pick not in chosen:
                chosen.append(pick)
        watchlists.append(chosen)
    offsets = [rng.uniform(0, period) for _ in range(users)]
    trace = sorted(
        (offset + k * period, watchlist)
        for offset, watchlist in zip(offsets, watchlists, strict=True)
        for k in range(minutes)
        if offset + k * period < minutes * 60
    )
    raw.flushdb()
    fake.reset_calls()
    now = [1_000_000.0]
    got = replay(quote_service_for(redis_url, fake, ttl, now), fake, now, trace, ttl, batch=True)
    per_symbol = len({s for w in watchlists for s in w}) * minutes
    print(
        f"dashboard trace: {users} users polling 20-symbol watchlists (from {len(symbols)} symbols, "
        f"{len({s for w in watchlists for s in w})} distinct) every {period:.0f}s for {minutes} simulated minutes "
        f"({len(trace)} batch requests, {got['answers']} quotes): {got['calls']} upstream calls, "
        f"{got['calls'] / minutes:.1f} a minute ({got['tickers'] / max(1, got['calls']):.0f} tickers per call); "
        f"one call per symbol per minute would be {per_symbol / minutes:.0f} a minute; "
        f"answers given as fresh but {ttl:.0f}s old or more: {got['stale_as_fresh']}"
    )
