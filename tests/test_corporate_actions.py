"""Splits and dividends from the vendor's current endpoints (GET /stocks/v1/splits and
/stocks/v1/dividends): the fake answers them as the vendor does and the deprecated paths
404; a 1-for-10 reverse split, a 5% stock dividend and a special dividend beside a
regular one on one ex-date, with the numbers written out, across the PostgreSQL/lake
seam; the vendor's cumulative factors checked against ours; a store built from the
deprecated endpoints' shapes reconciled with the new ids, nothing doubled."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from devtools.doubles.fake_polygon import FakePolygon
from shared.bars import DailyBar
from tests.support import fresh_app, ingest, ingested, local_client

# Four sessions in the lake, four in PostgreSQL (the recent tier starts 2019-12-31).
SESSIONS = [date(2019, 12, d) for d in (24, 26, 27, 30, 31)] + [date(2020, 1, d) for d in (2, 3)]
LAKE_DAYS, PG_DAYS = SESSIONS[:4], SESSIONS[4:]

# RVS: a 1-for-10 reverse split executed 2020-01-02 (in PostgreSQL's part): ten old
# shares become one, so the price as traded goes from ~2 to ~20.
RVS_CLOSES = [2.0, 2.1, 2.2, 2.0, 1.9, 19.0, 20.0]
# STK: a 5% stock dividend executed 2019-12-27 (in the lake's part): 105 shares for 100.
STK_CLOSES = [105.0, 106.0, 101.0, 100.0, 102.0, 103.0, 104.0]
# SPC: a special dividend of 5.00 beside the regular 1.00, both going ex 2019-12-31 (the
# first PostgreSQL session); the close before it is 100.
SPC_CLOSES = [100.0, 100.0, 100.0, 100.0, 94.0, 95.0, 96.0]
VOLUME = 1000.0

EXPECTED = {
    "RVS": {
        "raw": ([2.0, 2.1, 2.2, 2.0, 1.9, 19.0, 20.0], [1000.0] * 7),
        # Before the split: prices x 10 (split_from / split_to), volumes / 10.
        "split": ([20.0, 21.0, 22.0, 20.0, 19.0, 19.0, 20.0], [100.0] * 5 + [1000.0] * 2),
        "all": ([20.0, 21.0, 22.0, 20.0, 19.0, 19.0, 20.0], [100.0] * 5 + [1000.0] * 2),
    },
    "STK": {
        "raw": ([105.0, 106.0, 101.0, 100.0, 102.0, 103.0, 104.0], [1000.0] * 7),
        # Before 2019-12-27: prices x 100/105, volumes x 1.05.
        "split": ([100.0, 100.952381, 101.0, 100.0, 102.0, 103.0, 104.0], [1050.0] * 2 + [1000.0] * 5),
        "all": ([100.0, 100.952381, 101.0, 100.0, 102.0, 103.0, 104.0], [1050.0] * 2 + [1000.0] * 5),
    },
    "SPC": {
        "raw": ([100.0, 100.0, 100.0, 100.0, 94.0, 95.0, 96.0], [1000.0] * 7),
        "split": ([100.0, 100.0, 100.0, 100.0, 94.0, 95.0, 96.0], [1000.0] * 7),
        # Before 2019-12-31: x (1 - (5 + 1) / 100) = 0.94, the day's cash together; the
        # product of the two factors (0.95 x 0.99 = 0.9405) would overstate the return.
        "all": ([94.0, 94.0, 94.0, 94.0, 94.0, 95.0, 96.0], [1000.0] * 7),
    },
}
SPLITS = {
    "RVS": [(date(2020, 1, 2), 10.0, 1.0)],
    "STK": [(date(2019, 12, 27), 100.0, 105.0, "stock_dividend")],
}
DIVIDENDS = {"SPC": [(date(2019, 12, 31), 5.0, "special"), (date(2019, 12, 31), 1.0, "recurring")]}


def bars_of(closes: list[float]) -> list[DailyBar]:
    return [DailyBar(d, c, c, c, c, VOLUME) for d, c in zip(SESSIONS, closes, strict=True)]


@pytest.fixture(scope="module", params=["file", "s3"])
def actions_world(request, pg_server_url, moto_server, tmp_path_factory):
    bars = {"RVS": bars_of(RVS_CLOSES), "STK": bars_of(STK_CLOSES), "SPC": bars_of(SPC_CLOSES)}
    fake = FakePolygon(bars, splits=SPLITS, dividends=DIVIDENDS).start()
    with ingested(list(bars), fake.url, request.param, pg_server_url, moto_server, tmp_path_factory.mktemp("lake")):
        for module in fresh_app("backtest"):
            with local_client(module, "backtest") as client:
                yield client, fake
    fake.stop()


def get(client, query: str) -> dict:
    response = client.http.get(f"/api/backtest?{query}")
    assert response.status_code == 200, response.body
    return json.loads(response.body)


@pytest.mark.parametrize("adjustment", ["raw", "split", "all"])
@pytest.mark.parametrize("symbol", sorted(EXPECTED))
def test_reverse_split_stock_dividend_and_special_beside_regular_across_the_seam(actions_world, symbol, adjustment):
    client, _ = actions_world
    body = get(client, f"symbol={symbol}&period=all&adjustment={adjustment}")
    assert body["source"] == "lake+postgres"
    closes, volumes = EXPECTED[symbol][adjustment]
    assert [b["date"] for b in body["bars"]] == [d.isoformat() for d in SESSIONS]
    assert [b["close"] for b in body["bars"]] == closes
    assert [b["volume"] for b in body["bars"]] == volumes


def test_the_actions_are_listed_as_the_vendor_names_them(actions_world):
    client, _ = actions_world
    assert get(client, "symbol=RVS&period=all")["corporate_actions"] == [
        {"date": "2020-01-02", "type": "split", "split_from": 10.0, "split_to": 1.0, "adjustment_type": "reverse_split"}
    ]
    assert get(client, "symbol=STK&period=all")["corporate_actions"] == [
        {
            "date": "2019-12-27",
            "type": "split",
            "split_from": 100.0,
            "split_to": 105.0,
            "adjustment_type": "stock_dividend",
        }
    ]
    listed = get(client, "symbol=SPC&period=all&adjustment=all")["corporate_actions"]
    assert sorted((a["dividend_type"], a["amount"], a["factor"]) for a in listed) == [
        ("recurring", 1.0, pytest.approx(0.99)),
        ("special", 5.0, pytest.approx(0.95)),
    ]


def test_csv_and_parquet_carry_the_same_adjustment(actions_world):
    import pyarrow.parquet as pq

    client, _ = actions_world
    csv = client.http.get("/api/backtest?symbol=RVS&period=all&adjustment=split&format=csv")
    assert csv.body.decode().splitlines()[1] == "2019-12-24,20.0,20.0,20.0,20.0,100.0"
    parquet = client.http.get(
        "/api/backtest?symbol=SPC&period=all&adjustment=all&format=parquet",
        headers={"Accept": "application/vnd.apache.parquet"},
    )
    table = pq.read_table(io.BytesIO(parquet.body))
    assert table.column("Close").to_pylist() == EXPECTED["SPC"]["all"][0]


def test_ingestion_finds_the_vendors_factors_agree_with_ours(actions_world, capsys):
    """Every vendor factor here is right: ingestion says nothing about them."""
    assert ingest(["--symbols", "RVS,STK,SPC", "--from", "2019-01-01", "--to", "2020-01-03", "--force"]) == 0
    out = capsys.readouterr().out
    assert "factor" not in out and "kept" not in out, out


def test_a_factor_the_vendor_got_wrong_is_reported_by_symbol_and_date(actions_world, capsys):
    _, fake = actions_world
    fake.misreport_factor("split", "RVS", date(2020, 1, 2), 9.5)
    fake.misreport_factor("dividend", "SPC", date(2019, 12, 31), 0.9405)  # the product, not 1 - the sum
    try:
        assert ingest(["--symbols", "RVS,SPC", "--from", "2019-01-01", "--to", "2020-01-03", "--force"]) == 0
    finally:
        fake.misreported.clear()
    out = capsys.readouterr().out
    assert "RVS 2020-01-02 split: the vendor's factor is 9.500000, ours 10.000000" in out, out
    assert out.count("SPC 2019-12-31 dividend: the vendor's factor is 0.940500, ours 0.940000") == 2, out


# ---------------------------------------------------------------- a store from the deprecated endpoints


def legacy_lake_actions(lake_env: dict, symbol: str, actions: list) -> None:
    """The lake's actions object as the code before wrote it: the deprecated endpoints'
    ids and codes, and no adjustment_type column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from backtest.chalicelib import lake_writer
    from backtest.chalicelib.lake import actions_key_for
    from backtest.chalicelib.runtime import BacktestRuntime

    columns = ("symbol", "kind", "day", "split_from", "split_to", "amount", "dividend_type", "currency")
    columns += ("prev_close", "prev_day", "ref")
    table = pa.table({name: [getattr(a, name) for a in actions] for name in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    runtime = BacktestRuntime()
    lake_writer.put(runtime.lake.store, actions_key_for(symbol), sink.getvalue())
    runtime.reset()


def test_a_store_from_the_deprecated_endpoints_is_reconciled_with_the_new_ids(
    pg_server_url, moto_server, tmp_path, capsys
):
    from backtest.chalicelib import postgres_writer
    from backtest.chalicelib.runtime import BacktestRuntime
    from shared import postgres
    from shared.adjustment import CorporateAction

    # Ingested once with no actions at the vendor, then given the actions the deprecated
    # endpoints' code stored: their ids, their dividend codes (CD, SC), no adjustment_type,
    # and one dividend the vendor's current list does not have.
    fake = FakePolygon({"LEG": bars_of(SPC_CLOSES)}).start()
    legacy = [
        CorporateAction("LEG", "dividend", date(2019, 12, 31), amount=5.0, dividend_type="SC", currency="USD",
                        prev_close=100.0, prev_day=date(2019, 12, 30), ref="Ev3aaaa"),
        CorporateAction("LEG", "dividend", date(2019, 12, 31), amount=1.0, dividend_type="CD", currency="USD",
                        prev_close=100.0, prev_day=date(2019, 12, 30), ref="Ev3bbbb"),
        CorporateAction("LEG", "split", date(2019, 12, 26), split_from=1.0, split_to=2.0, ref="Ev3cccc"),
        CorporateAction("LEG", "dividend", date(2019, 12, 27), amount=0.5, dividend_type="CD", currency="USD",
                        prev_close=100.0, prev_day=date(2019, 12, 26), ref="Ev3dddd"),
    ]  # fmt: skip
    try:
        with ingested(["LEG"], fake.url, "file", pg_server_url, moto_server, tmp_path) as env:
            runtime = BacktestRuntime()
            runtime.database.run(lambda c: postgres_writer.upsert_actions(c, legacy))
            runtime.reset()
            legacy_lake_actions(env, "LEG", legacy)

            def answers():
                for module in fresh_app("backtest"):
                    with local_client(module, "backtest") as client:
                        return {a: get(client, f"symbol=LEG&period=all&adjustment={a}") for a in ("split", "all")}

            before = answers()
            # The vendor's current endpoints list the same events under new ids, but for the 2019-12-27 dividend.
            fake.add_split("LEG", date(2019, 12, 26), 1.0, 2.0)
            fake.bars["LEG"] = bars_of(SPC_CLOSES)  # the history the store holds, as traded
            fake.add_dividend("LEG", date(2019, 12, 31), 5.0, "special")
            fake.add_dividend("LEG", date(2019, 12, 31), 1.0, "recurring")
            capsys.readouterr()
            for _ in range(2):  # the second run changes nothing
                assert ingest(["--symbols", "LEG", "--from", "2019-01-01", "--to", "2020-01-03", "--force"]) == 0
            out = capsys.readouterr().out
            runtime = BacktestRuntime()
            stored = runtime.database.run(lambda c: postgres.read_actions(c, ["LEG"]))["LEG"]
            in_lake = runtime.lake.actions("LEG")
            runtime.reset()
            after = answers()
    finally:
        fake.stop()
    assert out.count("LEG 2019-12-27 dividend Ev3dddd: stored before, not in the vendor's list now: kept") == 2
    assert sorted(stored) == sorted(in_lake)
    by_day = sorted((a.day, a.kind, a.dividend_type or a.adjustment_type, a.ref.startswith("Ev3")) for a in stored)
    assert by_day == [
        (date(2019, 12, 26), "split", "forward_split", False),
        (date(2019, 12, 27), "dividend", "CD", True),  # kept, as it was
        (date(2019, 12, 31), "dividend", "recurring", False),
        (date(2019, 12, 31), "dividend", "special", False),
    ]
    # Nothing doubled, so every adjusted price is what it was; only the names moved.
    for adjustment in ("split", "all"):
        assert after[adjustment]["bars"] == before[adjustment]["bars"]
    assert sorted(a["dividend_type"] for a in after["all"]["corporate_actions"] if a["date"] == "2019-12-31") == [
        "recurring",
        "special",
    ]


# ---------------------------------------------------------------- the fake answers as the vendor does


@pytest.fixture
def vendor():
    bars = {s: bars_of(c) for s, c in (("RVS", RVS_CLOSES), ("STK", STK_CLOSES), ("SPC", SPC_CLOSES))}
    fake = FakePolygon(bars, splits=SPLITS, dividends=DIVIDENDS).start()
    yield fake
    fake.stop()


def client_for(fake):
    from massive import RESTClient

    return RESTClient(api_key="k", base=fake.url, retries=0)


def test_the_official_client_reads_the_new_endpoints_from_the_fake(vendor):
    client = client_for(vendor)
    splits = list(client.list_stocks_splits(sort="execution_date.asc"))
    assert [(s.ticker, s.execution_date, s.split_from, s.split_to, s.adjustment_type) for s in splits] == [
        ("STK", "2019-12-27", 100, 105, "stock_dividend"),
        ("RVS", "2020-01-02", 10, 1, "reverse_split"),
    ]
    # Cumulative to today's shares: 10 old shares are one now; 100 became 105.
    assert [s.historical_adjustment_factor for s in splits] == [pytest.approx(100 / 105, abs=1e-6), 10.0]
    assert all(isinstance(s.id, str) and len(s.id) == 32 for s in splits)
    dividends = list(client.list_stocks_dividends(ticker="SPC", sort="cash_amount.desc"))
    assert [(d.cash_amount, d.distribution_type, d.frequency, d.currency) for d in dividends] == [
        (5.0, "special", 0, "USD"),
        (1.0, "recurring", 4, "USD"),
    ]
    # The day's cash together against the close before: 1 - 6 / 100.
    assert {d.historical_adjustment_factor for d in dividends} == {0.94}


def test_defaults_paging_and_limits_are_the_vendors(vendor):
    import urllib.error
    import urllib.request

    def fetch(path: str):
        with urllib.request.urlopen(f"{vendor.url}{path}", timeout=10) as response:
            return json.loads(response.read())

    # Splits default to the newest first; a page is 100 unless asked, at most 5,000.
    assert [r["ticker"] for r in fetch("/stocks/v1/splits")["results"]] == ["RVS", "STK"]
    first = fetch("/stocks/v1/dividends?ticker.any_of=SPC,RVS&limit=1&sort=ex_dividend_date.asc,cash_amount.asc")
    assert [r["cash_amount"] for r in first["results"]] == [1.0] and first["status"] == "OK"
    second = fetch(first["next_url"][len(vendor.url) :])
    assert [r["cash_amount"] for r in second["results"]] == [5.0] and "next_url" not in second
    assert fetch("/stocks/v1/splits?execution_date.gte=2020-01-01")["results"][0]["ticker"] == "RVS"
    for path in ("/stocks/v1/splits?limit=5001", "/v3/reference/splits", "/v3/reference/dividends?ticker=SPC"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch(path)
        assert refused.value.code == (400 if "limit" in path else 404), path


def test_the_gateway_asks_the_current_endpoints_oldest_first_with_the_largest_page():
    from shared.polygon import PolygonGateway

    asked = []

    class Client:
        def list_stocks_splits(self, **kwargs):
            asked.append(("splits", kwargs))
            return Answer()

        def list_stocks_dividends(self, **kwargs):
            asked.append(("dividends", kwargs))
            return Answer()

    class Answer:
        data = json.dumps({"status": "OK", "results": [{"x": 1}], "request_id": "r"}).encode()

    gateway = PolygonGateway(client=Client())
    assert gateway.actions_page("splits", ticker="AAPL") == ([{"x": 1}], None)
    gateway.actions_page("dividends", ex_dividend_date="2026-12-04")
    assert asked == [
        ("splits", {"ticker": "AAPL", "limit": 5000, "sort": "execution_date.asc", "raw": True}),
        ("dividends", {"ex_dividend_date": "2026-12-04", "limit": 5000, "sort": "ex_dividend_date.asc", "raw": True}),
    ]


# ---------------------------------------------------------------- the rules, without servers


def action(kind: str, day: date, ref: str, **fields):
    from shared.adjustment import CorporateAction

    return CorporateAction("X", kind, day, ref=ref, **fields)


def test_cumulative_factors_are_the_vendors_definition():
    from shared.adjustment import cumulative_factors

    actions = [
        action("split", date(2020, 1, 2), "s1", split_from=1.0, split_to=4.0),
        action("split", date(2022, 1, 3), "s2", split_from=10.0, split_to=1.0),
        action("dividend", date(2021, 1, 4), "d1", amount=2.0, prev_close=100.0, prev_day=date(2020, 12, 31)),
        action("dividend", date(2023, 1, 3), "d2", amount=1.0, dividend_type="special", prev_close=50.0),
        action("dividend", date(2023, 1, 3), "d3", amount=1.5, dividend_type="recurring", prev_close=50.0),
        action("dividend", date(2023, 6, 1), "d4", amount=1.0, currency="CAD", prev_close=50.0),
    ]
    factors = cumulative_factors(actions)
    assert factors["s2"] == 10.0 and factors["s1"] == 2.5  # 1/4 x 10
    assert factors["d2"] == factors["d3"] == pytest.approx(0.95)  # 1 - (1 + 1.5) / 50, the day together
    assert factors["d1"] == pytest.approx(0.98 * 0.95)
    assert factors["d4"] is None  # not in USD: not counted, so not ours to compute


def test_a_disagreement_names_the_date_where_it_starts():
    from shared.adjustment import factor_disagreements

    actions = [
        action("split", date(2020, 1, 2), "s1", split_from=1.0, split_to=2.0),
        action("split", date(2021, 1, 4), "s2", split_from=1.0, split_to=2.0),
    ]
    # The vendor knows a third split we do not: both of ours disagree; the latest is listed first.
    assert factor_disagreements(actions, {"s1": 0.125, "s2": 0.25}) == [
        "2021-01-04 split: the vendor's factor is 0.250000, ours 0.500000",
        "2020-01-02 split: the vendor's factor is 0.125000, ours 0.250000",
    ]
    assert factor_disagreements(actions, {"s1": 0.2500004, "s2": 0.5}) == []  # within the 6 decimals


@pytest.mark.parametrize(
    "kind, counted",
    [("recurring", True), ("special", True), ("supplemental", True), ("irregular", True), ("unknown", True),
     ("CD", True), ("SC", True), ("LT", True), ("ST", True), ("bonus_shares", False)],
)  # fmt: skip
def test_which_distributions_total_return_counts(kind, counted):
    from shared.adjustment import dividend_factor

    dividend = action("dividend", date(2023, 1, 3), "d", amount=1.0, dividend_type=kind, prev_close=50.0)
    assert (dividend_factor(dividend, [], []) is not None) == counted
    assert dividend_factor(dividend._replace(currency="EUR"), [], []) is None


def test_a_malformed_vendor_row_is_refused_not_stored():
    from shared.adjustment import dividend_from_vendor, split_from_vendor

    with pytest.raises(ValueError):
        split_from_vendor("X", {"execution_date": "2020-01-02", "split_from": 1, "split_to": 0, "id": "a"})
    with pytest.raises(ValueError):
        dividend_from_vendor("X", {"ex_dividend_date": "2020-01-02", "cash_amount": "1.0", "id": "a"})
    parsed = split_from_vendor(
        "X",
        {
            "execution_date": "2020-01-02",
            "split_from": 100,
            "split_to": 105,
            "id": "a",
            "adjustment_type": "stock_dividend",
        },
    )
    assert parsed.action.split_kind == "stock_dividend" and parsed.vendor_factor is None
