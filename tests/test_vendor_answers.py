"""The vendor's real data as it comes: case-sensitive tickers, fractional volumes, its
own Retry-After, DELAYED snapshots, the time of each kind of price, OTC tickers, a
next_url that repeats. Against the fake Polygon answering as the vendor does (its
recorded bodies and OpenAPI examples), through the services' own interfaces."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from shared.bars import DailyBar
from tests.support import fresh_app, ingest, local_client, scheduled_report

RECENT_AS_OF = date(2026, 11, 20)
# Its last bar is in the recent window (PostgreSQL), the rest before it (the lake).
FRACTIONAL = [
    DailyBar(date(2021, 11, 19), 10.0, 10.5, 9.5, 10.2, 25933.6),  # before the window: the lake only
    DailyBar(date(2026, 11, 20), 10.2, 10.6, 10.1, 10.4, 1234.25),  # in it: PostgreSQL too
]


def vendor(**options) -> FakePolygon:
    bars = {
        "AAPL": synthetic_bars("AAPL", date(2026, 6, 1), 125, 150.0),
        # A preferred share: the vendor spells it with a lower-case letter.
        "KIMpL": synthetic_bars("KIMpL", date(2026, 6, 1), 125, 22.0),
        "OTCX": synthetic_bars("OTCX", date(2026, 6, 1), 125, 3.0),
        "FRAC": FRACTIONAL,
        "LOOP": synthetic_bars("LOOP", date(2026, 6, 1), 125, 5.0),
    }
    return FakePolygon(bars, otc={"OTCX"}, page_size=50, **options).start()


@pytest.fixture
def fake():
    server = vendor()
    yield server
    server.stop()


@pytest.fixture
def quotes(monkeypatch, redis_url, fake):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("POLYGON_BASE_URL", fake.url)
    monkeypatch.setenv("POLYGON_MAX_CALLS_PER_MIN", "1000")
    monkeypatch.setenv("POLYGON_RETRIES", "0")
    for module in fresh_app("quote"):
        with local_client(module, "quote") as client:
            yield client


@pytest.fixture
def stores(monkeypatch, database_url, tmp_path, redis_url, fake):
    env = {
        "DATABASE_URL": database_url,
        "LAKE_URI": f"file://{tmp_path}/lake",
        "S3_ENDPOINT_URL": "",
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "REDIS_URL": redis_url,
        "RECENT_AS_OF": RECENT_AS_OF.isoformat(),
        "RECENT_YEARS": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def get(client, query: str):
    response = client.http.get(f"/api/quote?{query}")
    return response, json.loads(response.body)


def history(symbol: str, **query) -> dict:
    params = "&".join(f"{k}={v}" for k, v in {"symbol": symbol, **query}.items())
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            response = client.http.get(f"/api/backtest?{params}")
            assert response.status_code == 200, response.body
            return json.loads(response.body)


# ---------------------------------------------------------------- 1. case-sensitive tickers


def test_a_ticker_with_a_lower_case_letter_is_kept_as_given_and_served(quotes, fake):
    response, body = get(quotes, "symbol=KIMpL")
    assert response.status_code == 200 and body["symbol"] == "KIMpL"
    assert fake.count("KIMpL") == 1 and fake.count("KIMPL") == 0
    # All in lower case is still upper-cased, and then it is another, unknown ticker.
    response, body = get(quotes, "symbol=kimpl")
    assert response.status_code == 404 and body["error"]["code"] == "unknown_symbol"
    assert "KIMPL" in body["error"]["message"]
    _, body = get(quotes, "symbol=aapl")
    assert body["symbol"] == "AAPL"
    _, body = get(quotes, "symbols=KIMpL,aapl,KIMPL")
    assert [r["symbol"] for r in body["results"]] == ["KIMpL", "AAPL"]
    assert [e["symbol"] for e in body["errors"]] == ["KIMPL"]


def test_a_lower_case_ticker_is_ingested_stored_and_updated_daily(stores, fake, monkeypatch):
    assert ingest(["--symbols", "KIMpL", "--from", "2026-06-01", "--to", "2026-11-13"]) == 0
    served = history("KIMpL", start="2026-11-01", end="2026-11-13")
    assert served["symbol"] == "KIMpL" and served["bars"][-1]["date"] == "2026-11-13"
    # The daily update matches the grouped row (T: "KIMpL") to the tracked symbol.
    report = run_update(monkeypatch, date(2026, 11, 20))
    assert report["days_filled"][-1] == "2026-11-20"
    assert all("KIMpL" not in missing for missing in report["without_bar"].values()), report["without_bar"]
    assert history("KIMpL", start="2026-11-01", end="2026-11-20")["bars"][-1]["date"] == "2026-11-20"


def test_an_alert_rule_keeps_the_tickers_case():
    from alerts.chalicelib.rules import validate

    assert validate({"symbol": "KIMpL", "condition": "close < 1"}, 200)["symbol"] == "KIMpL"
    assert validate({"symbol": "brk.b", "condition": "close < 1"}, 200)["symbol"] == "BRK.B"


def run_update(monkeypatch, as_of: date) -> dict:
    monkeypatch.setenv("RECENT_AS_OF", as_of.isoformat())
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            return scheduled_report(client, "daily-update")


# ---------------------------------------------------------------- 2. fractional volumes


def test_fractional_volumes_are_stored_and_served_whole_in_both_tiers(stores, fake):
    assert ingest(["--symbols", "FRAC", "--from", "2020-01-01", "--to", "2026-11-20"]) == 0
    served = history("FRAC", period="all")
    assert served["source"] == "lake+postgres"
    assert [b["volume"] for b in served["bars"]] == [25933.6, 1234.25]
    assert history("FRAC", period="all", interval="3d")["bars"][0]["volume"] == pytest.approx(25933.6 + 1234.25)
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            csv_text = client.http.get("/api/backtest?symbol=FRAC&period=all&format=csv").body.decode()
    assert csv_text.splitlines()[1].endswith(",25933.6") and csv_text.splitlines()[2].endswith(",1234.25")


def test_a_quotes_day_volume_keeps_its_fraction(quotes, fake):
    from tests.test_quote_api import ticker

    fake.set_snapshot("AAPL", ticker(day={"o": 100, "h": 104, "l": 99, "c": 103.0, "v": 642646.7, "vw": 101}))
    _, body = get(quotes, "symbol=AAPL")
    assert body["day"]["volume"] == 642646.7


# ---------------------------------------------------------------- 3. the vendor's Retry-After


def test_the_vendors_retry_after_is_passed_on(quotes, fake):
    fake.set_fault("AAPL", status=429, retry_after=2)
    response, body = get(quotes, "symbol=AAPL")
    assert response.status_code == 503 and body["error"]["code"] == "upstream_rate_limited"
    assert response.headers["Retry-After"] == "2"
    # And from what another request left (the failure held for a moment): still the vendor's.
    response, _ = get(quotes, "symbol=AAPL")
    assert response.headers["Retry-After"] == "2"


# ---------------------------------------------------------------- 4. "status": "DELAYED"


def test_a_delayed_snapshot_says_so(monkeypatch, redis_url):
    delayed = vendor(delayed=True)
    try:
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("POLYGON_BASE_URL", delayed.url)
        monkeypatch.delenv("POLYGON_DELAY_MIN", raising=False)
        for module in fresh_app("quote"):
            with local_client(module, "quote") as client:
                _, one = get(client, "symbol=AAPL")
                _, many = get(client, "symbols=KIMpL,OTCX")
    finally:
        delayed.stop()
    assert (one["delayed"], one["delay_min"]) == (True, 15)
    assert all(r["delayed"] and r["delay_min"] == 15 for r in many["results"])


def test_a_real_time_snapshot_is_not_delayed(quotes):
    _, body = get(quotes, "symbol=AAPL")
    assert (body["delayed"], body["delay_min"]) == (False, 0)


# ---------------------------------------------------------------- 5. the time of the price


def test_before_the_first_trade_the_price_is_the_previous_close_as_of_that_close(monkeypatch, redis_url):
    """After the 03:30 clear (the fake's clock: 05:00 New York): no lastTrade at all,
    ``updated`` 0, and the price is the previous close, which was the price at the last
    session's close before the answer (not the update time, which is 0)."""
    from shared.market_calendar import last_close_before

    cleared = vendor(clock=lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC))
    try:
        monkeypatch.setenv("REDIS_URL", redis_url)
        monkeypatch.setenv("POLYGON_BASE_URL", cleared.url)
        for module in fresh_app("quote"):
            with local_client(module, "quote") as client:
                _, body = get(client, "symbol=AAPL")
    finally:
        cleared.stop()
    assert body["source"] == "prev_close"
    expected = last_close_before(datetime.now(UTC)).astimezone(UTC)
    assert body["as_of"] == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert body["day"] is None


def test_the_previous_close_skips_weekends_and_holidays():
    from shared.market_calendar import last_close_before

    def close_before(*moment):
        return last_close_before(datetime(*moment, tzinfo=UTC)).astimezone(UTC).isoformat()

    assert close_before(2026, 11, 27, 10, 0) == "2026-11-25T21:00:00+00:00"  # Friday morning after Thanksgiving
    # Monday morning: Friday's, an early close (13:00 New York, the day after Thanksgiving)
    assert close_before(2026, 11, 30, 12, 0) == "2026-11-27T18:00:00+00:00"
    assert close_before(2024, 12, 24, 18, 30) == "2024-12-24T18:00:00+00:00"  # Christmas Eve, 13:30 New York
    assert close_before(2024, 12, 24, 17, 30) == "2024-12-23T21:00:00+00:00"  # 12:30: still open
    assert close_before(2026, 11, 24, 21, 30) == "2026-11-24T21:00:00+00:00"  # after today's close: today's
    assert close_before(2026, 7, 7, 13, 0) == "2026-07-06T20:00:00+00:00"  # summer time: 16:00 EDT


# ---------------------------------------------------------------- 6. OTC tickers


def test_an_otc_ticker_is_quoted_in_the_many_ticker_call_without_a_confirming_call(quotes, fake):
    _, body = get(quotes, "symbols=AAPL,OTCX")
    assert [r["symbol"] for r in body["results"]] == ["AAPL", "OTCX"] and body["errors"] == []
    assert fake.count_many() == 1 and fake.count(kind="snapshot") == 1  # the one many-ticker call only


def test_an_otc_ticker_gets_its_daily_bar_and_every_symbol_without_one_is_named(stores, fake, monkeypatch):
    assert ingest(["--symbols", "OTCX,AAPL", "--from", "2026-06-01", "--to", "2026-11-13"]) == 0
    fake.bars["AAPL"] = [b for b in fake.bars["AAPL"] if b.day != date(2026, 11, 17)]  # no AAPL bar that day
    report = run_update(monkeypatch, date(2026, 11, 20))
    assert report["days_filled"] == [f"2026-11-{d}" for d in (16, 17, 18, 19, 20)]
    assert report["without_bar"]["2026-11-17"] == ["AAPL"]
    assert all("OTCX" not in missing for missing in report["without_bar"].values())
    assert history("OTCX", start="2026-11-16", end="2026-11-20")["bars"][-1]["date"] == "2026-11-20"


# ---------------------------------------------------------------- 7. a next_url that repeats


def test_a_next_url_that_leads_back_is_not_followed_round_and_round(stores, fake, capsys):
    fake.looping_next_url.add("LOOP")
    assert ingest(["--symbols", "LOOP", "--from", "2026-06-01", "--to", "2026-11-20"]) == 1
    out = capsys.readouterr().out
    assert "LOOP: FAILED" in out and "leads back to a page read" in out
    assert fake.count("LOOP", kind="aggs") == 2  # the page, and its next_url once: then it stops


def test_the_fakes_next_url_is_the_vendors_shape(fake):
    """Absolute on the vendor's host, ``from`` rewritten to epoch ms, only an opaque cursor."""
    import urllib.request
    from urllib.parse import parse_qs, urlparse

    url = f"{fake.url}/v2/aggs/ticker/AAPL/range/1/day/2026-06-01/2026-11-20?adjusted=true&sort=asc&limit=50"
    body = json.loads(urllib.request.urlopen(url).read())
    following = urlparse(body["next_url"])
    assert body["next_url"].startswith(fake.url + "/v2/aggs/ticker/AAPL/range/1/day/")
    assert following.path.split("/")[-2].isdigit()  # from, as epoch milliseconds
    assert list(parse_qs(following.query)) == ["cursor"]
    assert all(isinstance(r["v"], float) and "n" in r for r in body["results"])
