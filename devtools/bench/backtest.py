"""History reads: pages across the tier seam, adjustment on read, against the bytes read."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta

from devtools.bench.common import LambdaContext, api_event, ms, timed, verdict
from devtools.local.sample_data import synthetic_bars


def load_synthetic_history(symbols: list[str], bars, database_url: str, lake, since: date) -> None:
    """The same 30-year series under many names: per-request cost does not depend on the prices."""
    import io

    from shared import postgres

    conn = postgres.connect(database_url, 30)
    postgres.migrate(conn)
    recent = [b for b in bars if b.day >= since]
    rows = "".join(f"{b.day},{b.open},{b.high},{b.low},{b.close},{b.volume}\n" for b in recent)
    from backtest.chalicelib import lake_writer

    lake_writer.write(lake, symbols[0], bars)
    blob, _ = lake.store.get(f"daily_bars/symbol={symbols[0]}/data.parquet")
    for symbol in symbols:
        copy = "".join(f"{symbol},{line}" for line in rows.splitlines(keepends=True))
        conn.run(
            "COPY daily_bars (symbol, day, open, high, low, close, volume) FROM STDIN WITH (FORMAT csv)",
            stream=io.StringIO(copy),
        )
        conn.run(
            "INSERT INTO symbols (symbol, first_day, last_day, basis, actions_loaded) VALUES (:s, :f, :l, 'raw', true)"
            " ON CONFLICT DO NOTHING",
            s=symbol,
            f=bars[0].day,
            l=bars[-1].day,
        )
        if symbol != symbols[0]:
            lake_writer.put(lake.store, f"daily_bars/symbol={symbol}/data.parquet", blob)
    conn.run("VACUUM ANALYZE daily_bars")
    conn.close()


def measure_backtest(module, db_url: str, moto, symbol: str, bars, since: date, results: dict, count: int) -> None:
    import io

    import boto3
    import pyarrow.parquet as pq

    from shared import postgres

    context = LambdaContext()
    as_of = bars[-1].day
    conn = postgres.connect(db_url, 10)

    def raw_pg():
        return conn.run(
            "SELECT day, open, high, low, close, volume FROM daily_bars"
            " WHERE symbol = :s AND day BETWEEN :a AND :b ORDER BY day",
            s=symbol,
            a=since,
            b=as_of,
        )

    raw_5y = timed(raw_pg, 50)
    rows = len(raw_pg())
    line = [f"  5 years from PostgreSQL ({rows} rows): raw pg8000 fetch {ms(raw_5y)}"]
    for interval in ("1d", "3d", "34d"):
        query = {"symbol": symbol, "start": since.isoformat(), "end": as_of.isoformat(), "interval": interval}
        event = api_event("/api/backtest", {**query, "limit": "10000"})
        response = module.app(event, context)
        assert response["statusCode"] == 200 and '"source":"postgres"' in response["body"], response
        t = timed(lambda e=event: module.app(e, context), 50)
        results[(count, interval)] = t
        line.append(f"{interval} {ms(t)} ({t / raw_5y:.2f}x raw)")
    print("; ".join(line))
    conn.close()

    raw_s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1")
    key = f"h/daily_bars/symbol={symbol}/data.parquet"

    def raw_lake():
        data = raw_s3.get_object(Bucket="bench-lake", Key=key)["Body"].read()
        return pq.read_table(io.BytesIO(data))

    raw_full = timed(raw_lake, 30)
    full = {"symbol": symbol, "start": bars[0].day.isoformat(), "end": (since - timedelta(days=1)).isoformat()}
    for fmt in ("json", "parquet"):
        event = api_event("/api/backtest", {**full, "limit": "10000", "format": fmt})
        event["headers"]["Accept"] = "*/*"
        before = len(moto.requests)
        response = module.app(event, context)
        requests = moto.requests[before:]
        assert response["statusCode"] == 200, response["body"][:300]
        t = timed(lambda e=event: module.app(e, context), 30)
        results[(count, f"lake {fmt}")] = t
        print(
            f"  full history from the lake on moto S3 ({len(raw_lake())} stored bars, format={fmt}): handler {ms(t)}; "
            f"raw single GET + Parquet decode {ms(raw_full)} ({t / raw_full:.2f}x raw); "
            f"S3 requests per read: {len(requests)}"
        )


def measure_adjustment(module, db_url: str, lake, symbol: str, bars, since: date) -> None:
    """adjustment=split and =all against the unadjusted (raw) answer of the same query, for a
    symbol with 3 splits and 120 quarterly dividends over 30 years, from each tier."""
    from backtest.chalicelib import lake_writer, postgres_writer
    from shared import postgres
    from shared.adjustment import CorporateAction, with_previous_closes

    actions = [
        CorporateAction(symbol, "split", d, split_from=1.0, split_to=2.0, ref=f"s{d}")
        for d in (date(2000, 6, 21), date(2005, 2, 28), date(2020, 8, 31))
    ]
    actions += [
        CorporateAction(symbol, "dividend", b.day, amount=0.05, dividend_type="CD", currency="USD", ref=f"d{b.day}")
        for b in bars[::63]
    ][:120]
    actions = with_previous_closes(actions, bars)
    conn = postgres.connect(db_url, 10)
    conn.run("UPDATE symbols SET basis = 'raw', actions_loaded = true WHERE symbol = :s", s=symbol)
    postgres_writer.upsert_actions(conn, actions)
    conn.close()
    lake_writer.write_actions(lake, symbol, actions)
    module.runtime.reset()
    context = LambdaContext()
    as_of = bars[-1].day
    ranges = {
        f"5 years from PostgreSQL ({sum(1 for b in bars if b.day >= since)} bars)": (since, as_of, "postgres"),
        f"the full lake history ({sum(1 for b in bars if b.day < since)} bars)": (
            bars[0].day,
            since - timedelta(days=1),
            "lake",
        ),
    }
    print(
        f"\nadjustment on read ({symbol}: {sum(a.kind == 'split' for a in actions)} splits, "
        f"{sum(a.kind == 'dividend' for a in actions)} dividends; handler medians, ratio to the raw answer):"
    )
    worst = 0.0
    for name, (start, end, source) in ranges.items():
        times = {}
        for adjustment in ("raw", "split", "all"):
            event = api_event(
                "/api/backtest",
                {
                    "symbol": symbol,
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "limit": "10000",
                    "adjustment": adjustment,
                },
            )
            response = module.app(event, context)
            assert response["statusCode"] == 200 and f'"source":"{source}"' in response["body"], response["body"][:300]
            times[adjustment] = timed(lambda e=event: module.app(e, context), 30)
        worst = max(worst, times["split"] / times["raw"], times["all"] / times["raw"])
        print(
            f"  {name}: raw {ms(times['raw'])}, split {ms(times['split'])} ({times['split'] / times['raw']:.2f}x), "
            f"all {ms(times['all'])} ({times['all'] / times['raw']:.2f}x)"
        )
    print(f"goal adjustment <= 1.2x the unadjusted answer: {verdict(worst <= 1.2)} (worst {worst:.2f}x)")


def bench_backtest(pg_url: str) -> None:
    from backtest.chalicelib.lake import Lake, open_store
    from devtools.doubles.servers import MotoServer, ThrowawayDatabase
    from tests.apps import load_app

    print("\n== backtest service ==")
    moto = MotoServer()
    moto.client("s3").create_bucket(Bucket="bench-lake")
    bars = synthetic_bars("SYN", date(1995, 1, 2), 7827, 30.0)  # 30 years of weekdays, to 2024-12-31
    as_of = bars[-1].day
    since = date(as_of.year - 5, as_of.month, as_of.day)
    module = load_app("backtest")
    print(
        f"synthetic history: {len(bars)} daily bars per symbol ({bars[0].day} to {as_of}); "
        f"recent window from {since} in PostgreSQL, all of it in the lake"
    )
    try:
        with ThrowawayDatabase(pg_url, "mds_bench") as db_url:
            lake = Lake(open_store("s3://bench-lake/h", moto.url))
            loaded: list[str] = []
            results: dict = {}
            for count in (10, 1000):
                new = [f"S{i:04d}" for i in range(len(loaded), count)]
                t0 = time.perf_counter()
                load_synthetic_history(new, bars, db_url, lake, since)
                loaded += new
                print(f"\n{count} symbols ({time.perf_counter() - t0:.1f}s to load {len(new)} more)")
                os.environ.update(
                    DATABASE_URL=db_url,
                    LAKE_URI="s3://bench-lake/h",
                    S3_ENDPOINT_URL=moto.url,
                    RECENT_AS_OF=as_of.isoformat(),
                    RECENT_YEARS="5",
                )
                module.runtime.reset()
                measure_backtest(module, db_url, moto, loaded[count // 2], bars, since, results, count)
                if count == 10:
                    measure_adjustment(module, db_url, lake, loaded[count // 2], bars, since)
            keys = ("1d", "3d", "34d", "lake json", "lake parquet")
            print(
                "\ngrowth from 10 to 1000 symbols (per-request median at 1000 / at 10): "
                + ", ".join(f"{k} {results[(1000, k)] / results[(10, k)]:.2f}x" for k in keys)
            )
            goal_pg = all(results[(1000, i)] < 0.010 for i in ("1d", "3d", "34d"))
            print(f"goal 5-year query under 10 ms: {verdict(goal_pg)}")
    finally:
        module.runtime.reset()
        moto.stop()
