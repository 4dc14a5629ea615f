"""python -m batch.migrate_raw: a store made before raw bars (split-adjusted bars, no
corporate actions) moved to raw bars and actions, stopped halfway by a failing vendor
and by a crash between a symbol's lake and PostgreSQL writes, then run again; every
symbol answers adjustment=split unchanged throughout."""

from __future__ import annotations

import io
import json
import os
from datetime import date

import pytest

from backtest.chalicelib import lake_writer, postgres_writer
from backtest.chalicelib.lake import Lake, open_store
from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars
from shared import postgres
from tests.support import RECENT_AS_OF, fresh_app, local_client

SYMBOLS = ["MIGA", "MIGB", "MIGC"]


def legacy_store(env: dict, fake: FakePolygon) -> None:
    """As the store was written before raw bars: the vendor's split-adjusted bars in both
    tiers, symbols.basis 'split', lake objects without a basis, no actions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = Lake(open_store(env["LAKE_URI"], env.get("S3_ENDPOINT_URL")))
    conn = postgres.connect(env["DATABASE_URL"], 5)
    postgres.migrate(conn)
    for symbol in SYMBOLS:
        bars = fake.adjusted_bars(symbol)
        table = pa.table(
            {
                "date": pa.array([b.day for b in bars], pa.date32()),
                **{k: pa.array([getattr(b, k) for b in bars], pa.float64()) for k in ("open", "high", "low", "close")},
                "volume": pa.array([int(b.volume) for b in bars], pa.int64()),  # volumes were integers then
            }
        )
        sink = io.BytesIO()
        pq.write_table(table, sink)
        lake_writer.put(lake.store, f"daily_bars/symbol={symbol}/data.parquet", sink.getvalue())
        recent = [b for b in bars if b.day >= date(2019, 12, 31)]
        postgres_writer.upsert_bars(conn, symbol, recent)
        postgres_writer.record_symbol(conn, symbol, bars[0].day, bars[-1].day, basis="split", actions_loaded=False)
    conn.close()


@pytest.fixture
def legacy(monkeypatch, database_url, lake_env, redis_url):
    bars = {s: synthetic_bars(s, date(2016, 1, 4), 1800, 60.0 + 10 * i) for i, s in enumerate(SYMBOLS)}
    fake = FakePolygon(bars, page_size=1000, dividends={s: [(date(2021, 5, 5), 0.4)] for s in SYMBOLS})
    for symbol in SYMBOLS:
        fake.add_split(symbol, date(2018, 6, 1), 1.0, 2.0)  # lake only
        fake.add_split(symbol, date(2022, 3, 1), 1.0, 3.0)  # in PostgreSQL's window
    fake.start()
    env = {
        "DATABASE_URL": database_url,
        "POLYGON_BASE_URL": fake.url,
        "POLYGON_MAX_CALLS_PER_MIN": "1000",
        "POLYGON_RETRIES": "0",
        "REDIS_URL": redis_url,
        "RECENT_YEARS": "5",
        "RECENT_AS_OF": RECENT_AS_OF,
        **lake_env,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    legacy_store(env, fake)
    yield fake
    fake.stop()


def migrate(argv=()) -> int:
    from backtest.chalicelib.runtime import BacktestRuntime
    from batch.migrate_raw import main

    runtime = BacktestRuntime()
    try:
        return main(list(argv), runtime=runtime)
    finally:
        runtime.reset()


def answers(adjustment: str) -> dict:
    out = {}
    for module in fresh_app("backtest"):
        with local_client(module, "backtest") as client:
            for symbol in SYMBOLS:
                response = client.http.get(
                    f"/api/backtest?symbol={symbol}&period=all&limit=10000&adjustment={adjustment}"
                )
                body = json.loads(response.body)
                out[symbol] = (response.status_code, body)
    return out


def closes(body: dict) -> list[float]:
    return [b["close"] for b in body["bars"]]


def assert_split_unchanged(before: dict) -> None:
    for symbol, (status, body) in answers("split").items():
        assert status == 200, body
        assert body["source"] == "lake+postgres"
        assert closes(body) == pytest.approx(closes(before[symbol][1]), abs=1e-4), symbol


def test_stopped_halfway_nothing_is_lost_and_a_rerun_finishes(legacy, monkeypatch, capsys):
    fake = legacy
    before = answers("split")
    assert all(status == 200 for status, _ in before.values())
    assert [answers("raw")[s][0] for s in SYMBOLS] == [409, 409, 409]  # nothing to un-adjust with yet
    assert migrate(["--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["to_migrate"] == SYMBOLS

    # First run: MIGB's history cannot be fetched (the vendor answers 500), and the process
    # dies after MIGC's lake object is written, before its PostgreSQL transaction.
    fake.set_fault("MIGB", status=500)
    real_upsert = postgres_writer.upsert_bars

    def crash_for_migc(conn, symbol, bars):
        if symbol == "MIGC":
            raise SystemExit("killed between the lake and PostgreSQL writes")
        return real_upsert(conn, symbol, bars)

    monkeypatch.setattr(postgres_writer, "upsert_bars", crash_for_migc)
    with pytest.raises(SystemExit):
        migrate()
    out = capsys.readouterr().out
    assert "MIGA: migrated" in out and "MIGB: NOT MIGRATED" in out
    monkeypatch.setattr(postgres_writer, "upsert_bars", real_upsert)

    # Halfway: every symbol still answers split exactly as before.
    assert_split_unchanged(before)
    raw = answers("raw")
    assert raw["MIGA"][0] == 200 and raw["MIGB"][0] == 409  # MIGB: untouched, still legacy
    # MIGC: its actions and raw lake object are stored, its PostgreSQL rows still split-adjusted;
    # both tiers answer from what each holds.
    assert raw["MIGC"][0] == 200
    assert closes(raw["MIGC"][1]) == pytest.approx(closes(raw["MIGA"][1]), rel=0.5)  # same shape of prices
    assert [b for b in fake.bars["MIGC"] if b.day == date(2017, 1, 3)][0].close == pytest.approx(
        next(b["close"] for b in raw["MIGC"][1]["bars"] if b["date"] == "2017-01-03"), abs=1e-4
    )

    # Run again with the vendor back: it finishes what is left, and only that.
    fake.clear_faults()
    assert migrate() == 0
    out = capsys.readouterr().out
    assert "MIGA" not in out and "MIGB: migrated" in out and "MIGC: migrated" in out
    assert_split_unchanged(before)
    for symbol, (status, body) in answers("raw").items():
        assert status == 200
        assert closes(body) == pytest.approx([b.close for b in fake.bars[symbol]], abs=1e-6), symbol
        assert [a["type"] for a in body["corporate_actions"]] == ["split", "dividend", "split"]
    conn = postgres.connect(os.environ["DATABASE_URL"], 5)
    try:
        assert conn.run("SELECT count(*) FROM symbols WHERE basis = 'split'")[0][0] == 0
    finally:
        conn.close()
    assert migrate() == 0  # nothing left: a third run changes nothing
