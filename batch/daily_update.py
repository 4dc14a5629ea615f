"""The daily update by hand, and on an interval for make run.

    python -m batch.daily_update                 # fill the missing sessions now
    python -m batch.daily_update --day 2026-11-24   # fetch one session again (changes nothing if it is stored)
    python -m batch.daily_update loop [--interval 3600]

The same code the backtest app's scheduled function runs (backtest/chalicelib/daily_update.py).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import date

from backtest.chalicelib.daily_update import run_daily_update
from shared.observability import configure_logging, record_run


def once(runtime, day: date | None = None) -> dict:
    report = run_daily_update(
        runtime.settings, runtime.database, runtime.lake, runtime.polygon, runtime.upstream_budget, day=day
    )
    return report.to_dict()


def main(argv=None, runtime=None) -> int:
    parser = argparse.ArgumentParser(
        prog="daily_update", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("command", nargs="?", choices=["once", "loop"], default="once")
    parser.add_argument("--day", type=date.fromisoformat, help="fetch this session again (YYYY-MM-DD)")
    parser.add_argument("--interval", type=float, default=None, help="loop: seconds between runs")
    args = parser.parse_args(argv)
    if runtime is None:
        from backtest.chalicelib.runtime import BacktestRuntime

        runtime = BacktestRuntime()
    if args.command == "once":
        done = once(runtime, args.day)
        print(json.dumps(done))
        return 1 if done["failed"] else 0
    interval = args.interval or runtime.settings.daily_update_local_interval_s
    # The line production writes for each run (shared.observability), so make run shows it.
    configure_logging(runtime.settings.log_level)
    try:
        while True:
            settings = runtime.settings
            run = run_daily_update(settings, runtime.database, runtime.lake, runtime.polygon, runtime.upstream_budget)
            record_run("backtest", settings.stage, run.job, run)
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
