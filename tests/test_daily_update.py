"""The daily update, as its scheduled Lambda function runs it (Chalice's test client
invokes it), against the fake Polygon's grouped daily bars, real PostgreSQL and a lake
on a local folder and on moto's S3."""

from __future__ import annotations

from datetime import date

import pytest

from backtest.chalicelib.lake import Lake, open_store
from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from shared import postgres
from tests.support import fresh_app, ingest, local_client, scheduled_report

SYMBOLS = ["UPA", "UPB", "UPS"]
STORED_THROUGH = date(2026, 11, 20)  # a Friday
# The week of Thanksgiving 2026: Monday 23 to Friday 27, the 26th a holiday.
SESSIONS = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25), date(2026, 11, 27)]


@pytest.fixture
def world(monkeypatch, database_url, lake_env, redis_url):
    bars = {s: synthetic_bars(s, date(2025, 6, 2), 390, 40 + 10 * i) for i, s in enumerate(SYMBOLS)}
    assert bars["UPA"][-1].day >= SESSIONS[-1]
    fake = FakePolygon(bars, page_size=200).start()
    env = {
        "DATABASE_URL": database_url,
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "REDIS_URL": redis_url,
        "RECENT_YEARS": "5",
        "RECENT_AS_OF": STORED_THROUGH.isoformat(),
        **lake_env,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert ingest(["--symbols", ",".join(SYMBOLS), "--from", "2025-01-01", "--to", STORED_THROUGH.isoformat()]) == 0
    fake.reset_calls()
    yield fake, env, bars
    fake.stop()


def update(monkeypatch, as_of: date, **payload) -> dict:
    """Invoke the daily-update function as its schedule would, with history due as of ``as_of``."""
    monkeypatch.setenv("RECENT_AS_OF", as_of.isoformat())
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            return scheduled_report(client, "daily-update")


def stored(env, symbol: str) -> list:
    conn = postgres.connect(env["DATABASE_URL"], 5)
    try:
        return postgres.read_bars(conn, symbol, date(2000, 1, 1), date(2100, 1, 1))
    finally:
        conn.close()


def lake_bars(env, symbol: str) -> list:
    return Lake(open_store(env["LAKE_URI"], env["S3_ENDPOINT_URL"])).read(symbol)


def test_catches_up_oldest_first_three_calls_a_day_skipping_the_holiday(world, monkeypatch):
    fake, env, bars = world
    report = update(monkeypatch, SESSIONS[-1])
    assert report["days_filled"] == [d.isoformat() for d in SESSIONS]
    # Each day: the grouped bars, the day's splits, the day's dividends; whatever the symbols.
    assert report["upstream_calls"] == 3 * 4 and fake.count(kind="grouped") == 4
    assert fake.count(kind="splits") == 4 and fake.count(kind="dividends") == 4
    assert fake.calls.get("grouped:2026-11-26") is None  # Thanksgiving: not a session, not asked
    assert report["updated"] == 3 and report["migrated"] == [] and report["rejected"] == []
    for symbol in SYMBOLS:
        expected = [b for b in bars[symbol] if b.day <= SESSIONS[-1] and b.day != date(2026, 11, 26)]
        assert lake_bars(env, symbol)[-5:] == expected[-5:]
        assert stored(env, symbol)[-4:] == expected[-4:]


def test_two_runs_of_one_day_change_nothing(world, monkeypatch):
    fake, env, _ = world
    first = update(monkeypatch, SESSIONS[0])
    assert first["days_filled"] == [SESSIONS[0].isoformat()] and first["rows_changed"] == 3
    again = update(monkeypatch, SESSIONS[0])
    assert again["days_filled"] == [] and again["upstream_calls"] == 0 and again["updated"] == 0
    # Asked for by hand, the day is fetched again and changes no row and no object.
    from backtest.chalicelib.runtime import BacktestRuntime
    from batch.daily_update import once

    runtime = BacktestRuntime()
    try:
        by_hand = once(runtime, SESSIONS[0])
    finally:
        runtime.reset()
    assert by_hand["days_filled"] == [SESSIONS[0].isoformat()] and by_hand["upstream_calls"] == 3
    assert by_hand["rows_changed"] == 0 and by_hand["lake_objects_written"] == 0 and by_hand["updated"] == 0


def test_a_day_polygon_lacks_stops_the_run_there_and_the_next_run_goes_on(world, monkeypatch):
    fake, env, bars = world
    missing = SESSIONS[1]
    kept = {s: [b for b in bars[s] if b.day == missing] for s in SYMBOLS}
    for s in SYMBOLS:
        fake.bars[s] = [b for b in fake.bars[s] if b.day != missing]
    report = update(monkeypatch, SESSIONS[-1])
    assert report["days_filled"] == [SESSIONS[0].isoformat()]
    assert report["days_left"] == [d.isoformat() for d in SESSIONS[1:]]
    assert "no bars for this day yet" in report["stopped"]
    for s in SYMBOLS:
        fake.add_bars(s, kept[s])
    later = update(monkeypatch, SESSIONS[-1])
    assert later["days_filled"] == [d.isoformat() for d in SESSIONS[1:]] and later["days_left"] == []


def test_a_symbol_without_a_bar_that_day_is_named_and_its_gap_filled_later(world, monkeypatch):
    fake, env, bars = world
    fake.bars["UPB"] = [b for b in fake.bars["UPB"] if b.day != SESSIONS[0]]  # halted on Monday
    report = update(monkeypatch, SESSIONS[1])
    assert report["without_bar"] == {SESSIONS[0].isoformat(): ["UPB"], SESSIONS[1].isoformat(): []}  # named
    # Tuesday's bar would leave a hole after Friday: the gap is fetched with the ingestion path.
    assert report["gaps_filled"] == ["UPB"]
    assert [b.day for b in stored(env, "UPB")[-2:]] == [STORED_THROUGH, SESSIONS[1]]


def served(symbol: str, adjustment: str) -> list[dict]:
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            response = client.http.get(f"/api/backtest?symbol={symbol}&period=all&limit=10000&adjustment={adjustment}")
            assert response.status_code == 200, response.body
            import json

            return json.loads(response.body)


def test_a_split_changes_no_stored_bar_only_the_factors_applied_on_read(world, monkeypatch):
    fake, env, bars = world
    before = stored(env, "UPS")
    fake.add_split("UPS", SESSIONS[0], 1.0, 2.0)  # from Monday it trades at half the price
    report = update(monkeypatch, SESSIONS[-1])
    assert report["splits"] == ["UPS"] and report["migrated"] == []
    assert report["upstream_calls"] == 3 * 4  # no history fetched again
    assert stored(env, "UPS")[: len(before)] == before  # not one stored bar changed
    assert stored(env, "UPS")[-1] == fake.bars["UPS"][[b.day for b in fake.bars["UPS"]].index(SESSIONS[-1])]
    raw, adjusted = served("UPS", "raw"), served("UPS", "split")
    assert raw["bars"][-len(SESSIONS) - 1]["close"] == before[-1].close  # Friday as traded
    assert adjusted["bars"][-len(SESSIONS) - 1]["close"] == pytest.approx(before[-1].close / 2)
    assert adjusted["corporate_actions"][-1] == {
        "date": SESSIONS[0].isoformat(),
        "type": "split",
        "split_from": 1.0,
        "split_to": 2.0,
        "adjustment_type": "forward_split",
    }
    assert report["factor_disagreements"] == {}


def test_a_dividend_is_stored_with_the_close_before_its_ex_date(world, monkeypatch):
    fake, env, bars = world
    fake.add_dividend("UPA", SESSIONS[1], 0.5)
    report = update(monkeypatch, SESSIONS[1])
    assert report["dividends"] == ["UPA"] and report["upstream_calls"] == 3 * 2
    monday = next(b for b in bars["UPA"] if b.day == SESSIONS[0])
    [dividend] = served("UPA", "all")["corporate_actions"]
    assert dividend["date"] == SESSIONS[1].isoformat() and dividend["amount"] == 0.5
    assert dividend["factor"] == pytest.approx(1 - 0.5 / monday.close)
    everything = {b["date"]: b for b in served("UPA", "all")["bars"]}
    assert everything[SESSIONS[0].isoformat()]["close"] == pytest.approx(monday.close - 0.5, abs=1e-6)
    assert everything[SESSIONS[1].isoformat()]["close"] == pytest.approx(
        next(b for b in bars["UPA"] if b.day == SESSIONS[1]).close
    )  # the ex-date's own bar and later ones are not adjusted


def test_a_symbol_stored_split_adjusted_that_splits_is_migrated_to_raw_bars(world, monkeypatch):
    fake, env, bars = world
    conn = postgres.connect(env["DATABASE_URL"], 5)
    conn.run("UPDATE symbols SET basis = 'split', actions_loaded = false WHERE symbol = 'UPB'")  # as before raw bars
    conn.close()
    fake.add_split("UPB", SESSIONS[0], 1.0, 4.0)
    report = update(monkeypatch, SESSIONS[0])
    assert report["migrated"] == ["UPB"]
    raw = served("UPB", "raw")
    on_split = next(b for b in raw["bars"] if b["date"] == SESSIONS[0].isoformat())
    friday = next(b for b in raw["bars"] if b["date"] == STORED_THROUGH.isoformat())
    assert on_split["close"] < friday["close"] / 3  # as traded: the price fell by four overnight
    adjusted = served("UPB", "split")["bars"]
    friday_adjusted = next(b for b in adjusted if b["date"] == STORED_THROUGH.isoformat())
    assert friday_adjusted["close"] == pytest.approx(friday["close"] / 4)


def test_a_lake_write_that_failed_is_made_good_by_the_next_run(world, monkeypatch):
    fake, env, bars = world
    from backtest.chalicelib import lake_writer

    real_put = lake_writer.put

    def failing_put(store, key, data):
        if "symbol=UPA/" in key:
            raise OSError("the lake refused the write")
        return real_put(store, key, data)

    monkeypatch.setattr(lake_writer, "put", failing_put)
    first = update(monkeypatch, SESSIONS[0])
    assert "the lake refused the write" in first["failed"]["UPA"]
    assert stored(env, "UPA")[-1].day == SESSIONS[0]  # PostgreSQL has it; the lake does not
    assert lake_bars(env, "UPA")[-1].day == STORED_THROUGH
    monkeypatch.setattr(lake_writer, "put", real_put)

    second = update(monkeypatch, SESSIONS[1])
    assert second["failed"] == {} and second["lake_caught_up"] == ["UPA"]
    expected = [b for b in bars["UPA"] if b.day <= SESSIONS[1]]
    assert lake_bars(env, "UPA")[-3:] == expected[-3:]  # no hole where the failed write was


def test_a_429_on_the_grouped_call_is_waited_out(world, monkeypatch):
    fake, env, _ = world
    fake.set_fault("GROUPED", status=429, retry_after=1, times=1)
    report = update(monkeypatch, SESSIONS[0])
    assert report["days_filled"] == [SESSIONS[0].isoformat()]
    assert fake.count(kind="grouped") == 2 and report["upstream_calls"] == 2 + 2
