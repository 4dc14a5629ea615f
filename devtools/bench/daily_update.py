"""The daily update at 1,000 and 5,000 symbols."""

from __future__ import annotations

import time
from datetime import date

from devtools.bench.common import verdict
from devtools.doubles.fake_polygon import FakePolygon
from devtools.local.sample_data import synthetic_bars


def bench_daily_update(pg_url: str, sizes=(1000, 5000)) -> dict:
    """The daily update for N tracked symbols, each with a 30-year lake object:
    one session to fill, lake writes included; its time and upstream calls."""
    import io

    from backtest.chalicelib import lake_writer
    from backtest.chalicelib.daily_update import run_daily_update
    from backtest.chalicelib.lake import Lake, open_store
    from backtest.chalicelib.loading import Patience
    from devtools.doubles.servers import MotoServer, ThrowawayDatabase
    from shared import postgres
    from shared.cache import LocalBudget
    from shared.config import Settings
    from shared.market_calendar import sessions_between
    from shared.polygon import PolygonGateway, make_client

    print("\n== daily update (one session for every tracked symbol; the lake on moto's S3) ==")
    history = synthetic_bars("UPD", date(1995, 1, 2), 7900, 30.0)
    sessions = sessions_between(history[-60].day, history[-1].day)
    stored_through, due = sessions[-2], sessions[-1]
    stored = [b for b in history if b.day <= stored_through]
    new_bar = next(b for b in history if b.day == due)
    figures = {}
    for count in sizes:
        moto = MotoServer(own_process=True)  # S3's work is not the update function's CPU
        fake = FakePolygon({}).start()
        try:
            moto.client("s3").create_bucket(Bucket="update-lake")
            symbols = [f"U{i:04d}" for i in range(count)]
            with ThrowawayDatabase(pg_url, "mds_bench_update") as db_url:
                t0 = time.perf_counter()
                lake = Lake(open_store("s3://update-lake/h", moto.url))
                lake_writer.write(lake, symbols[0], stored)
                blob, _ = lake.store.get(f"daily_bars/symbol={symbols[0]}/data.parquet")
                conn = postgres.connect(db_url, 30)
                postgres.migrate(conn)
                recent = stored[-20:]
                rows = "".join(
                    f"{s},{b.day},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for s in symbols for b in recent
                )
                conn.run(
                    "COPY daily_bars (symbol, day, open, high, low, close, volume) FROM STDIN WITH (FORMAT csv)",
                    stream=io.StringIO(rows),
                )
                spans = "".join(f"{s},{stored[0].day},{stored_through},raw,true\n" for s in symbols)
                conn.run(
                    "COPY symbols (symbol, first_day, last_day, basis, actions_loaded) FROM STDIN WITH (FORMAT csv)",
                    stream=io.StringIO(spans),
                )
                conn.close()
                for symbol in symbols[1:]:
                    lake_writer.put(lake.store, f"daily_bars/symbol={symbol}/data.parquet", blob)
                for symbol in symbols:
                    fake.bars[symbol] = [new_bar]
                setup = time.perf_counter() - t0
                settings = Settings.from_env(
                    {
                        "DATABASE_URL": db_url,
                        "LAKE_URI": "s3://update-lake/h",
                        "S3_ENDPOINT_URL": moto.url,
                        "POLYGON_BASE_URL": fake.url,
                        "RECENT_AS_OF": due.isoformat(),
                        "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                    }
                )
                database = postgres.Database(settings.database_url, 30)
                writer_lake = Lake(open_store(settings.lake_uri, moto.url), keep=0)
                gateway = PolygonGateway(make_client(settings))
                t0 = time.perf_counter()
                report = run_daily_update(
                    settings, database, writer_lake, gateway, LocalBudget(5), patience=Patience(60), lake_workers=16
                )
                wall = time.perf_counter() - t0
                database.close()
                done = report.to_dict()
                assert done["days_filled"] == [due.isoformat()] and done["updated"] == count, done
                figures[count] = {"wall_s": wall, "calls": report.calls, "timings": report.timings}
                print(
                    f"{count:,} tracked symbols ({len(blob) / 1024:.0f} KB lake object each, {setup:.0f} s to set up): "
                    f"{wall:.1f} s, {report.calls} upstream call(s), {report.lake_objects_written:,} lake objects "
                    f"rewritten; goal 3 calls a day (grouped bars, splits, dividends): {verdict(report.calls == 3)}"
                    + (f", <= 60 s: {verdict(wall <= 60)}" if count == 5000 else "")
                )
                print(f"  phases (s): {report.timings}")
        finally:
            fake.stop()
            moto.stop()
    return figures
