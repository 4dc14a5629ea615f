"""Many symbols, one upstream call: batches, single-flight per symbol across
processes, piggyback refresh, unknown symbols and failures inside a batch."""

from __future__ import annotations

import threading
import time

from devtools.bench.processes import concurrent_batches
from tests.test_quote_api import SNAPSHOT_NS, get, ticker


def listed(fake, symbols, price=10.0):
    for symbol in symbols:
        fake.set_snapshot(
            symbol, ticker(ticker=symbol, lastTrade={"c": [], "i": "1", "p": price, "s": 1, "t": SNAPSHOT_NS, "x": 4})
        )


def test_cold_symbols_in_one_batch_cost_one_upstream_call(quote_client, fake_polygon):
    response, body = get(quote_client, "symbols=AAPL,MSFT,IBM,BRK.B")
    assert response.status_code == 200
    assert [r["cache"]["status"] for r in body["results"]] == ["miss"] * 4
    assert fake_polygon.count() == 1 and fake_polygon.count_many() == 1
    assert all(fake_polygon.count(s) == 1 for s in ("AAPL", "MSFT", "IBM", "BRK.B"))


def test_the_budget_is_charged_per_call_not_per_symbol(quote_client, fake_polygon, quote_env):
    quote_env.setenv("POLYGON_MAX_CALLS_PER_MIN", "1")
    listed(fake_polygon, [f"B{i}" for i in range(20)])
    response, body = get(quote_client, "symbols=" + ",".join(f"B{i}" for i in range(20)))
    assert len(body["results"]) == 20 and body["errors"] == []
    response, body = get(quote_client, "symbol=AAPL")  # the one call of this minute is spent
    assert response.status_code == 503 and body["error"]["code"] == "upstream_budget_exhausted"


def test_chunks_of_the_configured_size(quote_client, fake_polygon, quote_env):
    quote_env.setenv("QUOTE_BATCH_CHUNK", "3")
    symbols = [f"C{i}" for i in range(7)]
    listed(fake_polygon, symbols)
    response, body = get(quote_client, "symbols=" + ",".join(symbols))
    assert len(body["results"]) == 7
    assert fake_polygon.count() == 3  # ceil(7 / 3): two many-ticker requests and a one-ticker one
    assert fake_polygon.count_many() == 2


def test_overlapping_batches_from_several_processes_fetch_each_symbol_once(redis_url, fake_polygon):
    symbols = [f"P{i}" for i in range(12)]
    listed(fake_polygon, symbols)
    fake_polygon.delay_s = 0.3  # every batch arrives while the others' calls are in flight
    batches = [symbols[0:6], symbols[3:9], symbols[6:12], symbols[0:12:2]]
    env = {"REDIS_URL": redis_url, "POLYGON_BASE_URL": fake_polygon.url, "POLYGON_MAX_CALLS_PER_MIN": "1000"}
    answers = concurrent_batches(env, batches)
    assert sorted(sorted(a) for a in answers) == sorted(sorted(b) for b in batches)
    for answer in answers:
        assert set(answer.values()) <= {"miss", "hit"}, answer
    assert {s: fake_polygon.count(s) for s in symbols} == dict.fromkeys(symbols, 1)
    assert fake_polygon.count() <= len(batches)


def test_hot_quotes_near_expiry_ride_along_and_a_hit_never_waits(quote_app, quote_client, fake_polygon, quote_env):
    quote_env.setenv("QUOTE_TTL_S", "3")
    quote_env.setenv("QUOTE_REFRESH_AHEAD_S", "2.5")
    quote_app.runtime.reset()
    get(quote_client, "symbol=AAPL")  # asked for: hot
    time.sleep(0.6)  # now AAPL expires within 2.5 s: a candidate
    response, body = get(quote_client, "symbol=MSFT")
    assert body["cache"]["status"] == "miss"
    assert fake_polygon.count_many() == 1 and fake_polygon.count("AAPL") == 2  # refreshed in MSFT's call
    _, refreshed = get(quote_client, "symbol=AAPL")
    assert refreshed["cache"]["status"] == "hit" and refreshed["cache"]["age_s"] < 0.5

    # While a slow call that carries AAPL is in flight, a hit on AAPL answers at once.
    time.sleep(0.6)
    fake_polygon.delay_s = 0.7  # slow, but inside the tests' 1 s read timeout (no retry)
    quotes = quote_app.runtime.quotes
    slow = threading.Thread(target=lambda: quotes.get("IBM"))
    slow.start()
    time.sleep(0.25)
    started = time.monotonic()
    answer = quotes.get("AAPL")
    waited = time.monotonic() - started
    slow.join()
    assert answer.status == "hit" and waited < 0.1, f"a hit waited {waited:.3f}s"
    assert fake_polygon.count("AAPL") == 3  # the slow call carried it


def test_an_unknown_symbol_in_a_batch_gets_its_own_404(quote_client, fake_polygon):
    response, body = get(quote_client, "symbols=AAPL,ZZZZ,MSFT")
    assert response.status_code == 200
    assert [r["symbol"] for r in body["results"]] == ["AAPL", "MSFT"]
    assert body["errors"] == [
        {"symbol": "ZZZZ", "code": "unknown_symbol", "message": "Polygon does not know the symbol ZZZZ"}
    ]
    # Left out of the batch answer, then confirmed by one one-ticker call; remembered afterwards.
    assert fake_polygon.count_many() == 1 and fake_polygon.count("ZZZZ", kind="snapshot") == 2
    get(quote_client, "symbols=IBM,ZZZZ")
    assert fake_polygon.count("ZZZZ") == 2


def test_a_failing_chunk_gives_each_symbol_its_stale_value_or_its_503(quote_client, fake_polygon, quote_env):
    quote_env.setenv("QUOTE_BATCH_CHUNK", "2")
    quote_env.setenv("QUOTE_TTL_S", "1")
    quote_env.setenv("QUOTE_HOT_S", "0")  # no piggyback here: the chunks are exactly the misses
    quote_env.setenv("POLYGON_RETRIES", "0")
    symbols = ["F0", "F1", "F2", "F3", "F4"]
    listed(fake_polygon, symbols + ["F5"], price=10.0)
    get(quote_client, "symbols=" + ",".join(symbols))
    time.sleep(1.1)
    listed(fake_polygon, symbols + ["F5"], price=11.0)
    fake_polygon.set_fault("F2", status=500)  # the call for the middle chunk fails
    response, body = get(quote_client, "symbols=F0,F1,F2,F5,F4")  # chunks [F0,F1] [F2,F5] [F4]
    by_symbol = {r["symbol"]: r for r in body["results"]}
    assert (by_symbol["F0"]["price"], by_symbol["F1"]["price"], by_symbol["F4"]["price"]) == (11.0, 11.0, 11.0)
    assert by_symbol["F2"]["stale"] is True and by_symbol["F2"]["price"] == 10.0
    assert body["errors"] == [
        {
            "symbol": "F5",
            "code": "upstream_unavailable",
            "message": "the market data vendor is unavailable: the vendor answered 500",
            "dependency": "vendor",
        }
    ]
    assert response.headers["Cache-Control"] == "max-age=0"
