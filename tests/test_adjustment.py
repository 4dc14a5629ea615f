"""raw, split and all (total return) answers of GET /api/backtest, checked against an
independent computation from the raw bars and the corporate actions the fake Polygon
serves, across the PostgreSQL / lake seam, for every interval; hand-checked cases with
their numbers written out; ETags; a backtest run over total return versus raw."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from shared.bars import INTERVALS, DailyBar
from tests.support import RECENT_AS_OF, fresh_app, ingest, ingested, local_client

# Hand-checked: six sessions, a 2-for-1 split on the third, a dividend of 1.04 on the
# fourth (the bar after the split; the close before it is 52, so its factor is 0.98),
# a 3-for-2 split on the fifth. The same prices once in 2024 (PostgreSQL) and once in
# 2014 (the lake only).
HAND_CLOSES = [100.0, 104.0, 52.0, 50.0, 34.0, 35.0]
HAND = {
    "HANDPG": [date(2024, 12, d) for d in (2, 3, 4, 5, 6, 9)],
    "HANDLK": [date(2014, 12, d) for d in (1, 2, 3, 4, 5, 8)],
}
# What each adjustment must answer, worked by hand (6 decimals, as served).
HAND_EXPECTED = {
    "raw": ([100.0, 104.0, 52.0, 50.0, 34.0, 35.0], [1000, 1000, 2000, 2000, 3000, 3000]),
    # Later splits: 2 x 1.5 = 3 for the first two bars, 1.5 for the next two.
    "split": ([33.333333, 34.666667, 34.666667, 33.333333, 34.0, 35.0], [3000, 3000, 3000, 3000, 3000, 3000]),
    # And x 0.98 for the three bars before the ex-date.
    "all": ([32.666667, 33.973333, 33.973333, 33.333333, 34.0, 35.0], [3000, 3000, 3000, 3000, 3000, 3000]),
}

# A long series across the seam (PostgreSQL from 2019-12-31): splits and quarterly
# dividends in both tiers, one dividend on the seam's first PostgreSQL session.
LONG = "ADJ"
LONG_SPLITS = [(date(2016, 6, 1), 1.0, 4.0), (date(2018, 3, 1), 1.0, 2.0), (date(2021, 3, 1), 2.0, 3.0)]
LONG_DIVIDENDS = [(date(2015, 11, 4), 0.5), (date(2017, 5, 3), 0.21), (date(2019, 12, 31), 0.3)] + [
    (date(y, m, 6), 0.12) for y in (2021, 2022, 2023, 2024) for m in (2, 5, 8, 11)
]


def hand_bars(days: list[date]) -> list[DailyBar]:
    volumes = HAND_EXPECTED["raw"][1]
    return [DailyBar(d, c, c, c, c, v) for d, c, v in zip(days, HAND_CLOSES, volumes)]


def hand_actions(days: list[date]):
    return [(days[2], 1.0, 2.0), (days[4], 2.0, 3.0)], [(days[3], 1.04)]


def raw_long_bars() -> list[DailyBar]:
    """Synthetic prices with each split applied from its day on, as they would trade."""
    bars = synthetic_bars(LONG, date(2015, 1, 2), 2520, 80.0)
    fake = FakePolygon({LONG: bars})
    for day, split_from, split_to in LONG_SPLITS:
        fake.add_split(LONG, day, split_from, split_to)
    return fake.bars[LONG]


def independently_adjusted(raw: list[DailyBar], splits, dividends, adjustment: str) -> list[tuple]:
    """Per bar, straight from the definitions: every later split's ratio, every later
    ex-date's 1 - amount / the raw close before it (in the ex-date's shares)."""
    out = []
    for bar in raw:
        price, volume = 1.0, 1.0
        if adjustment in ("split", "all"):
            for day, split_from, split_to in splits:
                if day > bar.day:
                    price *= split_from / split_to
                    volume *= split_to / split_from
        if adjustment == "all":
            for ex, amount in dividends:
                if ex > bar.day:
                    before = [b for b in raw if b.day < ex][-1]
                    close = before.close
                    for day, split_from, split_to in splits:
                        if before.day < day <= ex:
                            close *= split_from / split_to
                    price *= 1 - amount / close
        out.append(
            (
                bar.day.isoformat(),
                bar.open * price,
                bar.high * price,
                bar.low * price,
                bar.close * price,
                bar.volume * volume,
            )
        )
    return out


def in_sessions(daily: list[tuple], sessions: int) -> list[tuple]:
    """N-session bars counted from the first bar: first open, highest high, lowest low, last close, summed volume."""
    out = []
    for i in range(0, len(daily), sessions):
        group = daily[i : i + sessions]
        out.append(
            (
                group[0][0],
                group[0][1],
                max(g[2] for g in group),
                min(g[3] for g in group),
                group[-1][4],
                sum(g[5] for g in group),
            )
        )
    return out


def served_tuple(bar: dict) -> tuple:
    return (bar["date"], bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"])


def assert_same_bars(got: list[dict], expected: list[tuple]) -> None:
    assert [b["date"] for b in got] == [e[0] for e in expected]
    for bar, want in zip(got, expected):
        # Served prices are rounded to 6 decimals, each daily bar before it is aggregated.
        assert served_tuple(bar)[1:] == pytest.approx(want[1:], rel=1e-6, abs=2e-6), bar["date"]


@pytest.fixture(scope="module", params=["file", "s3"])
def adjusted_world(request, pg_server_url, moto_server, tmp_path_factory):
    bars = {LONG: raw_long_bars(), **{s: hand_bars(days) for s, days in HAND.items()}}
    splits = {LONG: LONG_SPLITS, **{s: hand_actions(days)[0] for s, days in HAND.items()}}
    dividends = {LONG: LONG_DIVIDENDS, **{s: hand_actions(days)[1] for s, days in HAND.items()}}
    fake = FakePolygon(bars, page_size=700, splits=splits, dividends=dividends).start()
    lake_dir = tmp_path_factory.mktemp("lake")
    with ingested(list(bars), fake.url, request.param, pg_server_url, moto_server, lake_dir):
        for module in fresh_app("backtest"):
            with local_client(module, "backtest") as client:
                yield client, fake
    fake.stop()


def get(client, query: str) -> dict:
    response = client.http.get(f"/api/backtest?{query}")
    assert response.status_code == 200, response.body
    return json.loads(response.body)


@pytest.mark.parametrize("symbol", sorted(HAND))
@pytest.mark.parametrize("adjustment", ["raw", "split", "all"])
def test_hand_checked_split_dividend_after_it_and_a_three_for_two(adjusted_world, symbol, adjustment):
    client, _ = adjusted_world
    body = get(client, f"symbol={symbol}&period=all&adjustment={adjustment}")
    assert body["source"] == ("postgres" if symbol == "HANDPG" else "lake")
    assert body["adjustment"] == adjustment
    closes, volumes = HAND_EXPECTED[adjustment]
    assert [b["close"] for b in body["bars"]] == closes
    assert [b["open"] for b in body["bars"]] == closes
    assert [b["volume"] for b in body["bars"]] == volumes
    days = HAND[symbol]
    assert body["corporate_actions"] == [
        {
            "date": days[2].isoformat(),
            "type": "split",
            "split_from": 1.0,
            "split_to": 2.0,
            "adjustment_type": "forward_split",
        },
        {
            "date": days[3].isoformat(),
            "type": "dividend",
            "amount": 1.04,
            "dividend_type": "recurring",
            "currency": "USD",
            "factor": pytest.approx(0.98),
        },
        {
            "date": days[4].isoformat(),
            "type": "split",
            "split_from": 2.0,
            "split_to": 3.0,
            "adjustment_type": "forward_split",
        },
    ]


@pytest.mark.parametrize("adjustment", ["raw", "split", "all"])
def test_an_action_on_the_first_and_on_the_last_bar_of_a_range(adjusted_world, adjustment):
    """From the day of the first split to the day of the second: the first bar is on its
    own split's day (not adjusted by it), the last bar is the second split's day (it
    adjusts every bar before it, not itself)."""
    client, _ = adjusted_world
    days = HAND["HANDPG"]
    body = get(client, f"symbol=HANDPG&start={days[2]}&end={days[4]}&adjustment={adjustment}")
    closes = {"raw": [52.0, 50.0, 34.0], "split": [34.666667, 33.333333, 34.0], "all": [33.973333, 33.333333, 34.0]}
    assert [b["close"] for b in body["bars"]] == closes[adjustment]
    assert [a["date"] for a in body["corporate_actions"]] == [d.isoformat() for d in days[2:5]]
    # One session each side: the split on the range's last bar is in, the one on the day after it is not.
    body = get(client, f"symbol=HANDPG&start={days[0]}&end={days[1]}&adjustment={adjustment}")
    assert body["corporate_actions"] == []
    assert [b["close"] for b in body["bars"]] == HAND_EXPECTED[adjustment][0][:2]


@pytest.mark.parametrize("adjustment", ["raw", "split", "all"])
@pytest.mark.parametrize("interval", sorted(set(INTERVALS) - {"daily"}, key=lambda i: INTERVALS[i]))
def test_every_served_bar_across_the_seam_matches_an_independent_computation(adjusted_world, interval, adjustment):
    client, fake = adjusted_world
    body = get(client, f"symbol={LONG}&period=all&interval={interval}&adjustment={adjustment}&limit=10000")
    assert body["source"] == "lake+postgres" and body["adjustment"] == adjustment
    daily = independently_adjusted(fake.bars[LONG], LONG_SPLITS, LONG_DIVIDENDS, adjustment)
    assert_same_bars(body["bars"], in_sessions(daily, INTERVALS[interval]))
    listed = [(a["date"], a["type"]) for a in body["corporate_actions"]]
    last = fake.bars[LONG][-1].day  # the last dividends are after the last bar: not listed
    assert listed == sorted(
        [(d.isoformat(), "split") for d, _, _ in LONG_SPLITS]
        + [(d.isoformat(), "dividend") for d, _ in LONG_DIVIDENDS if d <= last]
    )
    assert len(listed) > 12


def test_split_adjusted_is_what_the_vendor_answers_with_adjusted_true(adjusted_world):
    client, fake = adjusted_world
    body = get(client, f"symbol={LONG}&period=all&limit=10000")  # the default: split
    assert body["adjustment"] == "split"
    vendor = fake.adjusted_bars(LONG)  # the fake's own computation, rounded to 4 decimals as the vendor's
    assert [served_tuple(b)[1:5] for b in body["bars"]] == [pytest.approx(tuple(v[1:5]), abs=1e-4) for v in vendor]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_the_formats_say_which_adjustment_and_which_actions(adjusted_world, fmt):
    import pyarrow.parquet as pq

    client, _ = adjusted_world
    accept = {"Accept": "application/vnd.apache.parquet"} if fmt == "parquet" else {}
    response = client.http.get(f"/api/backtest?symbol=HANDPG&period=all&adjustment=all&format={fmt}", headers=accept)
    assert response.status_code == 200
    assert response.headers["X-Adjustment"] == "all"
    actions = json.loads(response.headers["X-Corporate-Actions"])
    assert [a["type"] for a in actions] == ["split", "dividend", "split"]
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(response.body))
        meta = table.schema.metadata
        assert meta[b"adjustment"] == b"all"
        assert json.loads(meta[b"corporate_actions"]) == actions
        assert table.column("Close").to_pylist() == HAND_EXPECTED["all"][0]
    else:
        rows = response.body.decode().splitlines()
        assert [float(r.split(",")[4]) for r in rows[1:]] == HAND_EXPECTED["all"][0]


def test_a_legacy_query_is_refused_an_unknown_adjustment(adjusted_world):
    client, _ = adjusted_world
    response = client.http.get("/api/backtest?symbol=HANDPG&period=all&adjustment=dividends")
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["code"] == "invalid_adjustment"


# ------------------------------------------------------------ validators and backtests


@pytest.fixture
def etag_world(monkeypatch, database_url, lake_env):
    bars = {"TAGS": synthetic_bars("TAGS", date(2023, 1, 2), 400, 50.0)}
    fake = FakePolygon(bars, splits={}, dividends={"TAGS": [(date(2023, 3, 1), 0.2)]}).start()
    for name, value in {
        "DATABASE_URL": database_url,
        "RECENT_AS_OF": RECENT_AS_OF,
        "RECENT_YEARS": "5",
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        **lake_env,
    }.items():
        monkeypatch.setenv(name, value)
    yield fake
    fake.stop()


def etags() -> dict:
    assert ingest(["--symbols", "TAGS", "--from", "2023-01-01", "--to", "2024-12-31", "--force"]) == 0
    out = {}
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            for adjustment in ("raw", "split", "all"):
                response = client.http.get(
                    f"/api/backtest?symbol=TAGS&start=2023-01-01&end=2023-06-30&adjustment={adjustment}"
                )
                assert response.status_code == 200
                out[adjustment] = response.headers["ETag"]
    return out


def test_an_etag_changes_exactly_when_an_action_that_affects_the_answer_is_added(etag_world):
    fake = etag_world
    first = etags()
    assert len(set(first.values())) == 3  # three different answers
    assert etags() == first  # loaded again, nothing new: every validator holds
    fake.add_dividend("TAGS", date(2023, 9, 1), 0.4)  # after the range: only total return moves
    second = etags()
    assert (second["raw"], second["split"]) == (first["raw"], first["split"]) and second["all"] != first["all"]
    fake.add_split("TAGS", date(2024, 2, 1), 1.0, 2.0)  # after the range: every adjusted answer moves
    third = etags()
    assert third["raw"] == first["raw"] and third["split"] != second["split"] and third["all"] != second["all"]
    fake.add_dividend("TAGS", date(2023, 5, 1), 0.1)  # within the range: even raw lists it
    assert etags()["raw"] != first["raw"]


def test_a_backtest_over_total_return_beats_raw_by_the_dividends(etag_world):
    import pandas as pd
    from backtesting import Backtest, Strategy

    fake = etag_world
    for ex in (date(2023, 6, 1), date(2023, 9, 1), date(2023, 12, 1), date(2024, 3, 1)):
        fake.add_dividend("TAGS", ex, 0.5)
    assert ingest(["--symbols", "TAGS", "--from", "2023-01-01", "--to", "2024-12-31", "--force"]) == 0

    class BuyAndHold(Strategy):
        def init(self):
            pass

        def next(self):
            if not self.position:
                self.buy(size=100)

    returns, entries = {}, {}
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            for adjustment in ("raw", "all"):
                response = client.http.get(
                    f"/api/backtest?symbol=TAGS&start=2023-01-01&end=2024-06-28&format=csv&adjustment={adjustment}"
                )
                frame = pd.read_csv(io.StringIO(response.body.decode()), index_col=0, parse_dates=True)
                stats = Backtest(frame, BuyAndHold, cash=100_000, finalize_trades=True).run()
                returns[adjustment] = stats["Equity Final [$]"] - 100_000
                [trade] = stats["_trades"].itertuples()
                entries[adjustment] = (trade.EntryTime.date(), trade.EntryPrice, trade.ExitPrice)
    (bought, raw_in, raw_out), (bought_all, all_in, all_out) = entries["raw"], entries["all"]
    assert bought == bought_all and raw_out == all_out  # the last bar is after every ex-date: unadjusted
    # Held from the entry to the end, total return adds the dividends whose ex-date came after the
    # entry: by the factors, computed here from the raw closes the fake serves.
    paid, factors = 0.0, 1.0
    for dividend in fake.dividends["TAGS"]:
        ex, amount = dividend.day, dividend.amount
        if bought < ex <= date(2024, 6, 28):
            paid += amount
            factors *= 1 - amount / [b for b in fake.bars["TAGS"] if b.day < ex][-1].close
    assert paid == pytest.approx(2.2)  # the fixture's 0.2 and the four 0.5s, all after the entry
    assert all_in == pytest.approx(raw_in * factors, rel=1e-5)
    assert returns["raw"] == pytest.approx(100 * (raw_out - raw_in), rel=1e-6)
    assert returns["all"] - returns["raw"] == pytest.approx(100 * raw_in * (1 - factors), rel=1e-5)
    # About the cash the 100 shares were paid (reinvested, it buys a little more than that).
    assert returns["all"] - returns["raw"] == pytest.approx(100 * paid, rel=0.1)
