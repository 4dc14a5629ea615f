"""The backtest service when a tier is down, and what a lake read costs on S3."""

from __future__ import annotations

import json

import pytest

from devtools.doubles.servers import free_port
from tests.apps import load_app
from tests.support import local_client


@pytest.fixture
def backtest_with(loaded_history, monkeypatch):
    """A fresh app whose environment a test can change before the first request."""
    module = load_app("backtest")

    def make(**env):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        module.runtime.reset()
        return local_client(module, "backtest")

    yield make
    module.runtime.reset()


def test_postgres_unreachable_answers_from_the_lake(backtest_with, loaded_history):
    client = backtest_with(DATABASE_URL=f"postgresql://postgres@127.0.0.1:{free_port()}/none", DATABASE_TIMEOUT_S="1")
    response = client.http.get("/api/backtest?symbol=HIST&start=2021-01-01&end=2021-03-31")
    body = json.loads(response.body)
    assert response.status_code == 200
    assert body["source"] == "lake"
    assert len(body["bars"]) > 55
    # An unknown symbol is still a 404 when only the lake can tell.
    assert client.http.get("/api/backtest?symbol=NOPE").status_code == 404


@pytest.mark.parametrize("loaded_history", ["s3"], indirect=True)
def test_lake_unreachable_for_an_old_range_is_a_503(backtest_with, loaded_history):
    client = backtest_with(S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    response = client.http.get("/api/backtest?symbol=HIST&start=2016-01-01&end=2016-12-31")
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "history_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    # The recent tier does not need the lake.
    assert client.http.get("/api/backtest?symbol=HIST&start=2021-01-01&end=2021-03-31").status_code == 200


@pytest.mark.parametrize("loaded_history", ["s3"], indirect=True)
def test_full_history_from_s3_is_one_request(backtest_with, loaded_history, moto_server):
    client = backtest_with()
    before = len(moto_server.requests)
    response = client.http.get("/api/backtest?symbol=OLD&start=2000-01-01&end=2005-12-31&limit=10000")
    made = moto_server.requests[before:]
    assert response.status_code == 200
    assert len(json.loads(response.body)["bars"]) == 1000
    assert made == [f"GET /{loaded_history['LAKE_URI'][5:].split('/')[0]}/market/daily_bars/symbol=OLD/data.parquet"]


def test_postgres_failing_mid_request_still_fills_the_recent_part_from_the_lake(loaded_history, history_bars):
    """PostgreSQL answers the symbol lookup, then drops before the bars of a range across the seam."""
    from datetime import date

    from backtest.chalicelib.runtime import BacktestRuntime
    from backtest.chalicelib.service import HistoryService, parse_query
    from shared.postgres import DatabaseUnavailable

    runtime = BacktestRuntime()
    calls = []

    class DropsAfterFirstCall:
        def run(self, work):
            calls.append(work)
            if len(calls) > 1:
                raise DatabaseUnavailable("connection lost")
            return runtime.database.run(work)

    service = HistoryService(runtime.settings, DropsAfterFirstCall(), runtime.lake)
    page = service.page(parse_query({"symbol": "HIST", "start": "2019-06-01", "end": "2020-06-30", "limit": "10000"}))
    expected = [b.day.isoformat() for b in history_bars["HIST"] if date(2019, 6, 1) <= b.day <= date(2020, 6, 30)]
    assert [b["date"] for b in page.bars] == expected
    assert page.source == "lake"
    runtime.reset()


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_warm_container_revalidates_the_lake_instead_of_reading_it_again(kind, moto_server, tmp_path):
    """Each read is one conditional request: unchanged, 304 and the decoded history is
    reused; changed, the new object is read. Never older than the object."""
    from datetime import date

    from backtest.chalicelib import lake_writer
    from backtest.chalicelib.lake import Lake, open_store
    from devtools.local.sample_data import synthetic_bars
    from tests.support import lake_settings

    env, cleanup = lake_settings(kind, moto_server, tmp_path)
    try:
        writer = Lake(open_store(env["LAKE_URI"], env["S3_ENDPOINT_URL"]))
        reader = Lake(open_store(env["LAKE_URI"], env["S3_ENDPOINT_URL"]))
        bars = synthetic_bars("WARM", date(2001, 1, 1), 300)
        lake_writer.write(writer, "WARM", bars)
        first = reader.read("WARM")
        before = len(moto_server.requests)
        again = reader.read("WARM", bars[10].day, bars[20].day)
        assert again == bars[10:21] and first == bars
        if kind == "s3":
            made = moto_server.requests[before:]
            assert len(made) == 1 and made[0].startswith("GET ")  # one request, answered 304
        changed = bars[:-1] + [bars[-1]._replace(close=bars[-1].close + 1)]
        lake_writer.write(writer, "WARM", changed)
        assert reader.read("WARM")[-1].close == bars[-1].close + 1
        assert reader.store.requests == 3
    finally:
        cleanup()
