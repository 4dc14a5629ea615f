"""The daily update, as its scheduled Lambda function runs it (Chalice's test client
invokes it), against the fake Polygon's grouped daily bars, real PostgreSQL and a lake
on a local folder and on moto's S3."""

from __future__ import annotations

from datetime import date

import pytest

from backtest.chalicelib.daily_update import split_suspect
from backtest.chalicelib.lake import Lake, open_store
from devtools.fake_polygon import FakePolygon
from devtools.sample_data import synthetic_bars
from shared import postgres
from tests.conftest import fresh_app, ingest, local_client

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
            event = client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:rule/daily-update"]
            )
            return client.lambda_.invoke("daily-update", event).payload


def stored(env, symbol: str) -> list:
    conn = postgres.connect(env["DATABASE_URL"], 5)
    try:
        return postgres.read_bars(conn, symbol, date(2000, 1, 1), date(2100, 1, 1))
    finally:
        conn.close()


def lake_bars(env, symbol: str) -> list:
    return Lake(open_store(env["LAKE_URI"], env["S3_ENDPOINT_URL"])).read(symbol)


def test_catches_up_oldest_first_one_call_a_day_skipping_the_holiday(world, monkeypatch):
    fake, env, bars = world
    report = update(monkeypatch, SESSIONS[-1])
    assert report["days_filled"] == [d.isoformat() for d in SESSIONS]
    assert report["upstream_calls"] == 4 and fake.count(kind="grouped") == 4
    assert fake.calls.get("grouped:2026-11-26") is None  # Thanksgiving: not a session, not asked
    assert report["updated"] == 3 and report["refetched"] == [] and report["rejected"] == []
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
    assert by_hand["days_filled"] == [SESSIONS[0].isoformat()] and by_hand["upstream_calls"] == 1
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


def test_a_split_refetches_the_adjusted_history_instead_of_appending_a_bar_that_does_not_join(world, monkeypatch):
    fake, env, bars = world
    fake.split("UPS", SESSIONS[0], 2.0)  # the whole adjusted history halves
    report = update(monkeypatch, SESSIONS[-1])
    assert report["refetched"] == ["UPS"]
    assert report["days_filled"] == [d.isoformat() for d in SESSIONS]
    adjusted = [
        b for b in fake.bars["UPS"] if date(2025, 1, 1) <= b.day <= SESSIONS[-1] and b.day != date(2026, 11, 26)
    ]
    assert lake_bars(env, "UPS") == adjusted
    assert stored(env, "UPS") == [b for b in adjusted if b.day >= date(2021, 11, 20)]
    assert report["upstream_calls"] == 4 + 2  # the four days, and UPS's whole history (two pages of 200)
    # The others were appended as usual.
    assert lake_bars(env, "UPA")[-1].day == SESSIONS[-1]


def test_a_big_move_that_is_not_a_split_is_appended_after_the_refetch_agrees(world, monkeypatch):
    fake, env, bars = world
    crash = bars["UPA"][[b.day for b in bars["UPA"]].index(SESSIONS[0])]
    fell = crash._replace(open=round(crash.open / 2, 2), low=round(crash.low / 2, 2), close=round(crash.close / 2, 2))
    fake.add_bars("UPA", [fell])
    report = update(monkeypatch, SESSIONS[0])
    assert report["refetched"] == []  # the history did not change: a real move
    assert stored(env, "UPA")[-1] == fell


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
    assert fake.count(kind="grouped") == 2 and report["upstream_calls"] == 2


@pytest.mark.parametrize(
    "open_price, close, suspect",
    [
        (50.0, 100.0, True),
        (200.0, 100.0, True),
        (66.7, 100.0, True),
        (10.0, 100.0, True),
        (80.0, 100.0, True),
        (95.0, 100.0, False),
        (120.0, 100.0, False),
        (45.0, 100.0, False),
        (100.0, 100.0, False),
    ],
)
def test_what_counts_as_a_bar_that_does_not_join(open_price, close, suspect):
    """A usual split ratio within 2%: not any big move (6/5 and 0.45 are not splits)."""
    assert split_suspect(open_price, close) is suspect
