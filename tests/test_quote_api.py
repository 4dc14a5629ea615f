"""GET /api/quote through Chalice's test client, against real Redis and the fake Polygon."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from devtools.doubles.servers import free_port

SNAPSHOT_NS = 1_732_550_400_123_000_000  # 2024-11-25T16:00:00.123Z


def get(client, query: str):
    response = client.http.get(f"/api/quote?{query}")
    return response, json.loads(response.body) if response.body else None


def ticker(**parts) -> dict:
    base = {
        "ticker": "AAPL",
        "updated": SNAPSHOT_NS,
        "todaysChange": 0,
        "todaysChangePerc": 0,
        "day": {"o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0},
        "min": {"av": 0, "o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0, "t": 0, "n": 0},
        "prevDay": {"o": 99, "h": 101, "l": 98, "c": 100.0, "v": 1000, "vw": 100},
        "lastTrade": {"c": None, "i": "", "p": 0, "s": 0, "t": 0, "x": 0},
        "lastQuote": {"P": 0, "S": 0, "p": 0, "s": 0, "t": 0},
    }
    base.update(parts)
    return base


def test_miss_then_hit_with_vendor_timestamp(quote_client, fake_polygon):
    fake_polygon.set_snapshot(
        "AAPL",
        ticker(
            lastTrade={"c": [], "i": "1", "p": 102.5, "s": 100, "t": SNAPSHOT_NS, "x": 4},
            day={"o": 100.5, "h": 103, "l": 100, "c": 102.4, "v": 12345, "vw": 101},
        ),
    )

    first, body = get(quote_client, "symbol=AAPL")
    assert first.status_code == 200
    assert body["symbol"] == "AAPL"
    assert body["price"] == 102.5
    assert body["source"] == "last_trade"
    assert body["as_of"] == "2024-11-25T16:00:00.123Z"
    assert body["prev_close"] == 100.0
    assert body["change"] == pytest.approx(2.5)
    assert body["change_pct"] == pytest.approx(2.5)
    assert body["day"] == {"open": 100.5, "high": 103, "low": 100, "close": 102.4, "volume": 12345}
    assert body["stale"] is False
    assert body["cache"]["status"] == "miss"
    assert first.headers["Cache-Control"] == "max-age=60"

    second, body2 = get(quote_client, "symbol=aapl")
    assert body2["cache"]["status"] == "hit"
    assert 0 <= body2["cache"]["age_s"] < 5
    assert body2["price"] == 102.5
    max_age = int(second.headers["Cache-Control"].split("=")[1])
    assert 55 <= max_age <= 60
    assert fake_polygon.count("AAPL") == 1


@pytest.mark.parametrize(
    "parts, source, price, as_of",
    [
        # The snapshot was updated at 11:00 New York on Monday 2024-11-25. A price that is
        # the previous close was the price at Friday's close, 16:00 New York.
        ({}, "prev_close", 100.0, "2024-11-22T21:00:00.000Z"),
        (
            {
                "min": {
                    "av": 5,
                    "o": 101,
                    "h": 101,
                    "l": 101,
                    "c": 101.25,
                    "v": 5,
                    "vw": 101,
                    "t": 1_732_550_340_000,  # the minute from 10:59 New York
                    "n": 1,
                }
            },
            "minute",
            101.25,
            "2024-11-25T16:00:00.000Z",  # its close is the price at the minute's end
        ),
        (
            {"day": {"o": 100, "h": 104, "l": 99, "c": 103.0, "v": 10, "vw": 101}},
            "day",
            103.0,
            "2024-11-25T16:00:00.123Z",
        ),
    ],
)
def test_price_falls_back_through_zero_filled_fields(quote_client, fake_polygon, parts, source, price, as_of):
    fake_polygon.set_snapshot("AAPL", ticker(**parts))
    response, body = get(quote_client, "symbol=AAPL")
    assert response.status_code == 200
    assert (body["source"], body["price"], body["as_of"]) == (source, price, as_of)
    if source in ("prev_close", "minute"):
        assert body["day"] is None


def test_class_share_symbols_are_accepted(quote_client, fake_polygon):
    response, body = get(quote_client, "symbol=brk.b")
    assert response.status_code == 200
    assert body["symbol"] == "BRK.B"
    assert fake_polygon.count("BRK.B") == 1


@pytest.mark.parametrize(
    "query, code",
    [
        ("", "missing_symbol"),
        ("symbol=", "missing_symbol"),
        ("symbol=AAPL;DROP", "invalid_symbol"),
        ("symbol=TOOLONGSYMBOL", "invalid_symbol"),
        ("symbol=A..B", "invalid_symbol"),
        ("symbols=AAPL,%24%24", "invalid_symbol"),
        ("symbol=AAPL&symbols=MSFT", "conflicting_parameters"),
    ],
)
def test_bad_input_is_a_clear_400(quote_client, fake_polygon, query, code):
    response, body = get(quote_client, query)
    assert response.status_code == 400
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert fake_polygon.count() == 0


def test_unknown_symbol_is_404_and_remembered(quote_client, fake_polygon):
    for _ in range(3):
        response, body = get(quote_client, "symbol=ZZZZ")
        assert response.status_code == 404
        assert body["error"]["code"] == "unknown_symbol"
    assert fake_polygon.count("ZZZZ") == 1


@pytest.mark.parametrize(
    "status, code",
    [
        (500, "upstream_unavailable"),
        (503, "upstream_unavailable"),
        (429, "upstream_rate_limited"),
        (401, "upstream_refused"),
        (403, "upstream_refused"),
    ],
)
def test_upstream_failure_without_cache_is_503_with_retry_after(quote_client, fake_polygon, status, code):
    fake_polygon.set_fault("AAPL", status=status)
    started = time.monotonic()
    response, body = get(quote_client, "symbol=AAPL")
    assert response.status_code == 503
    assert body["error"]["code"] == code
    assert int(response.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 3
    # Rate limits and refusals are not retried; 5xx is retried once.
    assert fake_polygon.count("AAPL") == (2 if status >= 500 else 1)


def test_malformed_upstream_body_is_503_not_500(quote_client, fake_polygon):
    fake_polygon.set_fault("AAPL", garbage=True)
    response, body = get(quote_client, "symbol=AAPL")
    assert response.status_code == 503
    assert body["error"]["code"] == "upstream_unavailable"


def test_one_transient_5xx_is_retried(quote_client, fake_polygon):
    fake_polygon.set_fault("AAPL", status=502, times=1)
    response, body = get(quote_client, "symbol=AAPL")
    assert response.status_code == 200
    assert fake_polygon.count("AAPL") == 2


def test_slow_upstream_is_cut_off_by_the_timeout(quote_client, fake_polygon, quote_env):
    quote_env.setenv("POLYGON_RETRIES", "0")
    fake_polygon.set_fault("AAPL", delay_s=3)
    started = time.monotonic()
    response, body = get(quote_client, "symbol=AAPL")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 2.0, f"a 1 s read timeout took {elapsed:.1f}s"


@pytest.mark.parametrize(
    "fault", [{"status": 429, "retry_after": 30}, {"status": 500}, {"delay_s": 3}, {"garbage": True}]
)
def test_upstream_failure_serves_last_known_value_as_stale(quote_client, fake_polygon, quote_env, fault):
    quote_env.setenv("QUOTE_TTL_S", "1")
    first, body = get(quote_client, "symbol=AAPL")
    assert body["cache"]["status"] == "miss"
    time.sleep(1.1)
    fake_polygon.set_fault("AAPL", **fault)
    started = time.monotonic()
    response, body = get(quote_client, "symbol=AAPL")
    # Retry-After on a 429 is not obeyed inside the request: the answer stays quick.
    assert time.monotonic() - started < 3
    assert response.status_code == 200
    assert body["stale"] is True
    assert body["cache"]["status"] == "stale"
    assert body["cache"]["age_s"] >= 1
    assert response.headers["Cache-Control"] == "max-age=0"


def test_delayed_plan_is_declared(quote_client, fake_polygon, quote_env):
    quote_env.setenv("POLYGON_DELAY_MIN", "15")
    _, body = get(quote_client, "symbol=AAPL")
    assert body["delayed"] is True
    assert body["delay_min"] == 15


def test_batch_mixes_results_and_errors(quote_client, fake_polygon, redis_client):
    get(quote_client, "symbol=AAPL")  # cached now
    # IBM's own snapshot is unusable (no price at all): only IBM fails, in a call MSFT shares.
    fake_polygon.set_snapshot("IBM", {"ticker": "IBM", "updated": SNAPSHOT_NS})
    response, body = get(quote_client, "symbols=AAPL,msft,ZZZZ,IBM,AAPL")
    assert response.status_code == 200
    assert [r["symbol"] for r in body["results"]] == ["AAPL", "MSFT"]
    assert [r["cache"]["status"] for r in body["results"]] == ["hit", "miss"]
    assert {(e["symbol"], e["code"]) for e in body["errors"]} == {
        ("ZZZZ", "unknown_symbol"),
        ("IBM", "upstream_unavailable"),
    }
    assert fake_polygon.count("AAPL") == 1


def test_a_batch_of_cached_symbols_is_one_redis_round_trip(quote_client, fake_polygon, redis_client):
    get(quote_client, "symbols=AAPL,MSFT,IBM")
    get(quote_client, "symbols=AAPL,MSFT,IBM")  # the hot marks of this process are written by now

    def stats():
        return {k: v["calls"] for k, v in redis_client.info("commandstats").items()}

    before = stats()
    response, body = get(quote_client, "symbols=IBM,AAPL,MSFT")
    after = stats()
    assert [r["cache"]["status"] for r in body["results"]] == ["hit"] * 3
    changed = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    changed.pop("cmdstat_info", None)
    assert changed == {"cmdstat_mget": 1}


def test_batch_misses_are_fetched_concurrently(quote_client, fake_polygon):
    fake_polygon.delay_s = 0.3
    started = time.monotonic()
    response, body = get(quote_client, "symbols=AAPL,MSFT,IBM,BRK.B")
    elapsed = time.monotonic() - started
    assert len(body["results"]) == 4
    assert elapsed < 0.9, f"4 misses at 0.3 s each took {elapsed:.2f}s"


def test_batch_is_limited_to_50_symbols(quote_client):
    symbols = ",".join(f"S{i}" for i in range(51))
    response, body = get(quote_client, f"symbols={symbols}")
    assert response.status_code == 400
    assert body["error"]["code"] == "too_many_symbols"


def test_upstream_budget_is_never_exceeded(quote_client, fake_polygon, quote_env):
    quote_env.setenv("POLYGON_MAX_CALLS_PER_MIN", "2")
    assert get(quote_client, "symbol=AAPL")[0].status_code == 200
    assert get(quote_client, "symbol=MSFT")[0].status_code == 200
    response, body = get(quote_client, "symbol=IBM")
    assert response.status_code == 503
    assert body["error"]["code"] == "upstream_budget_exhausted"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Cached symbols still answer.
    assert get(quote_client, "symbol=AAPL")[1]["cache"]["status"] == "hit"
    assert fake_polygon.count() == 2


def test_redis_down_still_answers_from_upstream(quote_client, fake_polygon, quote_env):
    quote_env.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(2):
        response, body = get(quote_client, "symbol=AAPL")
        assert response.status_code == 200
        assert body["cache"]["status"] == "bypass"
        assert body["price"] > 0


def test_unresponsive_redis_is_bypassed_quickly(quote_client, fake_polygon, quote_env):
    # A server that accepts connections and never answers: the worst kind of slow.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        quote_env.setenv("REDIS_URL", f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        started = time.monotonic()
        response, body = get(quote_client, "symbol=AAPL")
        first = time.monotonic() - started
        started = time.monotonic()
        response2, body2 = get(quote_client, "symbol=MSFT")
        second = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in accepted:
            conn.close()
    assert response.status_code == 200 and body["cache"]["status"] == "bypass"
    assert first < 1.0, f"first request waited {first:.2f}s on a silent Redis"
    # After one failure Redis is skipped for a while instead of timing out again.
    assert body2["cache"]["status"] == "bypass"
    assert second < 0.2
