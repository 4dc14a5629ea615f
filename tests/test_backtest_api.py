"""GET /api/backtest against real PostgreSQL and a lake on a local folder and on moto's S3."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta

import pytest

WINDOW_START = date(2019, 12, 31)


def get(client, query: str, headers: dict | None = None):
    response = client.http.get(f"/api/backtest?{query}", headers=headers or {})
    body = (
        json.loads(response.body) if response.headers.get("Content-Type", "").startswith("application/json") else None
    )
    return response, body


def days_between(history_bars, symbol, start, end):
    return [b for b in history_bars[symbol] if start <= b.day <= end]


def test_recent_range_reads_postgres(backtest_client, history_bars):
    response, body = get(backtest_client, "symbol=HIST&start=2021-01-01&end=2021-12-31")
    assert response.status_code == 200
    assert body["source"] == "postgres"
    expected = days_between(history_bars, "HIST", date(2021, 1, 1), date(2021, 12, 31))
    assert [b["date"] for b in body["bars"]] == [b.day.isoformat() for b in expected]
    first = body["bars"][0]
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == tuple(expected[0][1:])
    assert body["next_cursor"] is None
    assert (body["symbol"], body["interval"], body["start"], body["end"]) == ("HIST", "1d", "2021-01-01", "2021-12-31")


def test_old_range_reads_the_lake(backtest_client, history_bars):
    response, body = get(backtest_client, "symbol=HIST&start=2015-01-01&end=2018-12-31&limit=10000")
    assert body["source"] == "lake"
    assert len(body["bars"]) == len(days_between(history_bars, "HIST", date(2015, 1, 1), date(2018, 12, 31)))


def test_range_across_the_seam_has_no_missing_or_doubled_day(backtest_client, history_bars):
    response, body = get(backtest_client, "symbol=HIST&start=2019-06-01&end=2020-06-30&limit=10000")
    assert body["source"] == "lake+postgres"
    expected = [b.day.isoformat() for b in days_between(history_bars, "HIST", date(2019, 6, 1), date(2020, 6, 30))]
    got = [b["date"] for b in body["bars"]]
    assert got == expected
    assert len(set(got)) == len(got)
    assert "2019-12-30" in got and "2019-12-31" in got


def test_fibonacci_bars_count_trading_sessions_from_start(backtest_client, history_bars):
    response, body = get(backtest_client, "symbol=HIST&start=2021-01-02&end=2021-03-31&interval=5d")
    daily = days_between(history_bars, "HIST", date(2021, 1, 2), date(2021, 3, 31))
    bars = body["bars"]
    assert body["interval"] == "5d"
    assert bars[0]["date"] == daily[0].day.isoformat()  # the first session on or after start
    assert bars[0]["end_date"] == daily[4].day.isoformat()
    assert bars[0]["open"] == daily[0].open and bars[0]["close"] == daily[4].close
    assert bars[0]["high"] == max(b.high for b in daily[:5])
    assert bars[0]["volume"] == sum(b.volume for b in daily[:5])
    assert [b["partial"] for b in bars[:-1]] == [False] * (len(bars) - 1)
    assert bars[-1]["sessions"] == len(daily) % 5 or 5
    assert bars[-1]["partial"] == (len(daily) % 5 != 0)


def test_daily_alias_and_defaults(backtest_client, history_bars):
    response, body = get(backtest_client, "symbol=hist&interval=daily")
    last = history_bars["HIST"][-1].day
    assert body["interval"] == "1d"
    assert body["end"] == last.isoformat()
    assert body["start"] == (last.replace(year=last.year - 1) + timedelta(days=1)).isoformat()
    assert body["bars"][-1]["date"] == last.isoformat()
    assert "ETag" not in response.headers  # the latest bar may still change


@pytest.mark.parametrize(
    "query, code",
    [
        ("symbol=HIST&start=2021-13-01", "invalid_date"),
        ("symbol=HIST&end=yesterday", "invalid_date"),
        ("symbol=HIST&start=2022-01-01&end=2021-01-01", "invalid_range"),
        ("symbol=HIST&interval=4d", "invalid_interval"),
        ("symbol=HIST&limit=0", "invalid_limit"),
        ("symbol=HIST&limit=10001", "invalid_limit"),
        ("symbol=HIST&limit=ten", "invalid_limit"),
        ("symbol=HIST&format=xml", "invalid_format"),
        ("start=2021-01-01", "missing_symbol"),
        ("symbol=HIST&cursor=bogus", "invalid_cursor"),
        ("symbol=HIST&period=2y", "invalid_period"),
        ("symbol=HIST&period=5y&start=2020-01-01", "conflicting_parameters"),
        ("symbol=HIST&overlays=sma(0)", "invalid_overlay"),
        ("symbol=HIST&overlays=sma(201)", "invalid_overlay"),
        ("symbol=HIST&overlays=wma(5)", "invalid_overlay"),
        ("symbol=HIST&overlays=sma(1),sma(2),sma(3),ema(4),ema(5)", "invalid_overlay"),
    ],
)
def test_bad_input_is_a_400(backtest_client, query, code):
    response, body = get(backtest_client, query)
    assert response.status_code == 400
    assert body["error"]["code"] == code


def test_unknown_symbol_is_404_and_empty_range_is_200(backtest_client):
    response, body = get(backtest_client, "symbol=NOPE&start=2021-01-01&end=2021-12-31")
    assert response.status_code == 404
    assert body["error"]["code"] == "unknown_symbol"
    response, body = get(backtest_client, "symbol=OLD&start=2021-01-01&end=2021-12-31")
    assert response.status_code == 200
    assert body["bars"] == []
    assert body["next_cursor"] is None


@pytest.mark.parametrize("interval", ["1d", "3d", "34d"])
def test_pages_concatenate_to_the_whole_answer_across_the_seam(backtest_client, interval):
    query = f"symbol=HIST&start=2018-03-05&end=2021-02-01&interval={interval}"
    _, whole = get(backtest_client, query + "&limit=10000")
    pages, cursor = [], None
    while True:
        _, body = get(backtest_client, query + "&limit=7" + (f"&cursor={cursor}" if cursor else ""))
        assert len(body["bars"]) <= 7
        pages.extend(body["bars"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert len(body["bars"]) == 7
    assert pages == whole["bars"]


def test_cursor_is_bound_to_its_query_and_signed(backtest_client):
    _, body = get(backtest_client, "symbol=HIST&start=2021-01-01&end=2021-12-31&limit=5")
    cursor = body["next_cursor"]
    assert cursor
    response, other = get(backtest_client, f"symbol=HIST&start=2021-01-01&end=2021-11-30&limit=5&cursor={cursor}")
    assert response.status_code == 400
    assert other["error"]["code"] == "cursor_mismatch"
    payload, _, signature = cursor.partition(".")
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    response, other = get(backtest_client, f"symbol=HIST&start=2021-01-01&end=2021-12-31&limit=5&cursor={tampered}")
    assert response.status_code == 400
    assert other["error"]["code"] == "invalid_cursor"


def test_csv_feeds_backtesting_py(backtest_client):
    import pandas as pd
    from backtesting import Backtest, Strategy

    response, _ = get(backtest_client, "symbol=HIST&start=2016-01-01&end=2022-12-31&limit=10000&format=csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(response.body.decode()), index_col=0, parse_dates=True)
    assert list(frame.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert frame.index.is_monotonic_increasing

    class BuyAndHold(Strategy):
        def init(self):
            pass

        def next(self):
            if not self.position:
                self.buy()

    stats = Backtest(frame, BuyAndHold, cash=1_000_000, finalize_trades=True).run()
    assert stats["# Trades"] >= 1


def test_parquet_holds_the_same_table(backtest_client):
    import pyarrow.parquet as pq

    query = "symbol=HIST&start=2019-01-01&end=2020-12-31&interval=8d&limit=10000"
    _, body = get(backtest_client, query)
    refused = backtest_client.http.get(f"/api/backtest?{query}&format=parquet")
    assert refused.status_code == 406
    assert json.loads(refused.body)["error"]["code"] == "accept_required"
    response = backtest_client.http.get(
        f"/api/backtest?{query}&format=parquet", headers={"Accept": "application/vnd.apache.parquet"}
    )
    assert response.headers["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.body))
    assert table.column_names == ["Date", "Open", "High", "Low", "Close", "Volume"]
    assert [d.isoformat() for d in table.column("Date").to_pylist()] == [b["date"] for b in body["bars"]]
    assert table.column("Close").to_pylist() == [b["close"] for b in body["bars"]]


def test_past_range_gets_an_etag_and_304(backtest_client):
    query = "symbol=HIST&start=2020-01-01&end=2020-12-31"
    response, _ = get(backtest_client, query)
    etag = response.headers["ETag"]
    # Split-adjusted prices of the past change only when the daily update stores a split
    # or dividend: they may be kept until then. Raw prices of the past never change.
    max_age = int(response.headers["Cache-Control"].split("max-age=")[1])
    assert 600 <= max_age <= 4 * 86400 + 600
    raw, _ = get(backtest_client, query + "&adjustment=raw")
    assert "max-age=86400" in raw.headers["Cache-Control"] and raw.headers["ETag"] != etag
    again = backtest_client.http.get(f"/api/backtest?{query}", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.body in (b"", "")
    changed = backtest_client.http.get(f"/api/backtest?{query}&interval=3d", headers={"If-None-Match": etag})
    assert changed.status_code == 200


def test_periods_count_back_from_the_latest_bar_and_all_starts_at_the_first(backtest_client, history_bars):
    bars = history_bars["HIST"]
    last = bars[-1].day
    _, body = get(backtest_client, "symbol=HIST&period=5y&limit=10000")
    assert body["start"] == (last.replace(year=last.year - 5) + timedelta(days=1)).isoformat()
    assert body["bars"][-1]["date"] == last.isoformat()
    _, everything = get(backtest_client, "symbol=HIST&period=all&limit=10000")
    assert everything["start"] == bars[0].day.isoformat()
    assert [b["date"] for b in everything["bars"]] == [b.day.isoformat() for b in bars]
    assert everything["available"] == {"first": bars[0].day.isoformat(), "last": last.isoformat()}
    assert everything["source"] == "lake+postgres"


def test_a_cursor_is_bound_to_its_period(backtest_client):
    _, first = get(backtest_client, "symbol=HIST&period=all&limit=100")
    response, body = get(backtest_client, f"symbol=HIST&period=5y&limit=100&cursor={first['next_cursor']}")
    assert response.status_code == 400 and body["error"]["code"] == "cursor_mismatch"


@pytest.mark.parametrize("interval", ["1d", "5d", "34d"])
def test_overlays_are_the_alerts_indicators_at_each_bars_last_session(backtest_client, history_bars, interval):
    """sma(n)/ema(n) at a bar (rounded to 6 decimals) are shared.indicators' values on the daily closes up to the bar's last
    session: the same numbers a rule such as close < sma(50) compares, warm-up read before the page."""
    from shared.indicators import ema, sma

    query = f"symbol=HIST&start=2019-06-03&end=2020-03-31&interval={interval}&overlays=sma(50),ema(20),sma(1)"
    response, body = get(backtest_client, query + "&limit=10000")
    assert response.status_code == 200
    assert list(body["overlays"]) == ["sma(50)", "ema(20)", "sma(1)"]
    daily = history_bars["HIST"]
    index = {b.day.isoformat(): i for i, b in enumerate(daily)}
    closes = [b.close for b in daily]
    for j, bar in enumerate(body["bars"]):
        last = index[bar.get("end_date", bar["date"])]
        assert body["overlays"]["sma(50)"][j] == pytest.approx(sma(closes[: last + 1], 50), abs=5e-7)
        assert body["overlays"]["ema(20)"][j] == pytest.approx(ema(closes[: last + 1], 20), abs=5e-7)
        assert body["overlays"]["sma(1)"][j] == pytest.approx(bar["close"])
    # Pages carry the same values as the whole answer: each page reads its own warm-up.
    pages, cursor = [], None
    while True:
        _, page = get(backtest_client, query + "&limit=9" + (f"&cursor={cursor}" if cursor else ""))
        pages.extend(page["overlays"]["sma(50)"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == body["overlays"]["sma(50)"]


def test_overlays_lack_values_only_where_history_is_too_short(backtest_client, history_bars):
    first = history_bars["HIST"][0].day
    _, body = get(backtest_client, f"symbol=HIST&start={first}&end={first + timedelta(days=20)}&overlays=sma(5)")
    values = body["overlays"]["sma(5)"]
    assert values[:4] == [None] * 4 and None not in values[4:]
    _, plain = get(backtest_client, "symbol=HIST&start=2021-01-01&end=2021-02-01")
    assert plain["overlays"] == {}


def test_overlays_are_columns_of_the_csv_and_parquet(backtest_client):
    import pyarrow.parquet as pq

    query = "symbol=HIST&start=2021-01-01&end=2021-06-30&interval=3d&overlays=sma(10),ema(5)"
    _, body = get(backtest_client, query)
    response, _ = get(backtest_client, query + "&format=csv")
    lines = response.body.decode().splitlines()
    assert lines[0] == "Date,Open,High,Low,Close,Volume,SMA_10,EMA_5"
    assert float(lines[-1].split(",")[6]) == body["overlays"]["sma(10)"][-1]
    parquet = backtest_client.http.get(f"/api/backtest?{query}&format=parquet", headers={"Accept": "*/*"})
    table = pq.read_table(io.BytesIO(parquet.body))
    assert table.column("EMA_5").to_pylist() == body["overlays"]["ema(5)"]
