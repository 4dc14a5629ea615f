"""Move a store from split-adjusted bars to raw bars and corporate actions, once.

    python -m batch.migrate_raw            # every symbol still stored split-adjusted
    python -m batch.migrate_raw --dry-run  # say which, and what it would ask Polygon

Stores made before raw bars hold the vendor's split-adjusted bars (``symbols.basis``
"split", lake objects without a ``basis``) and no splits or dividends. For each such
symbol this fetches its raw history over its whole stored span and its corporate
actions, and stores them in place of the old: the actions first, then the lake
object, then PostgreSQL's rows and basis in one transaction
(``backtest.chalicelib.loading.store``). Stopped anywhere (Ctrl-C, a 429 past its
patience, a crash), nothing is lost: a symbol not reached still answers
``adjustment=split`` as before (``raw`` and ``all`` answer 409 until it is
migrated), one reached is done, and running again goes on with the rest.
Calls: one per 50,000 bars of a symbol's history, and two for its actions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from backtest.chalicelib.indicator_states import refresh
from backtest.chalicelib.loading import Patience, WaitingBudget, fetch_actions, fetch_history, store, validate
from backtest.chalicelib.service import market_today, window_start

log = logging.getLogger(__name__)


def legacy(conn) -> list[tuple[str, object, object]]:
    return conn.run("SELECT symbol, first_day, last_day FROM symbols WHERE basis = 'split' ORDER BY symbol")


def main(argv=None, runtime=None) -> int:
    parser = argparse.ArgumentParser(
        prog="migrate_raw", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--max-wait", type=float, default=None, help="seconds to wait on 429s and the budget, in all")
    args = parser.parse_args(argv)
    if runtime is None:
        from backtest.chalicelib.runtime import BacktestRuntime

        runtime = BacktestRuntime()
    settings = runtime.settings
    today = market_today()
    since = window_start(settings, today)
    todo = runtime.database.run(legacy)
    if args.dry_run:
        print(json.dumps({"to_migrate": [s for s, _, _ in todo], "upstream_calls_at_least": 3 * len(todo)}))
        return 0
    patience = Patience(settings.ingest_max_wait_s if args.max_wait is None else args.max_wait)
    budget = WaitingBudget(runtime.upstream_budget, patience)
    failed = []
    for symbol, first_day, last_day in todo:
        try:
            bars = fetch_history(runtime.polygon, budget, settings, symbol, first_day, last_day, patience)
            bars, rejected = validate(symbol, bars, today)
            actions = fetch_actions(runtime.polygon, budget, settings, symbol, patience)
            stored = store(symbol, bars, runtime.database, runtime.lake, since, replace=True, actions=actions)
            print(f"{symbol}: migrated: {len(bars)} raw bars, {len(actions.actions)} actions, {len(rejected)} rejected")
            for x in rejected:
                print(f"  {x.symbol} {x.day}: rejected: {x.reason}")
            for line in stored.factor_disagreements:
                print(f"  {symbol} {line}")
        except Exception as exc:  # noqa: BLE001 - reported; the symbol stays as it was, the others go on
            failed.append(symbol)
            print(f"{symbol}: NOT MIGRATED (still split-adjusted, still served): {type(exc).__name__}: {exc}")
    migrated = {s for s, _, _ in todo} - set(failed)
    refreshed = refresh(runtime.database, runtime.history, symbols=migrated, rewritten=migrated)
    print(f"indicator states: {refreshed.to_dict()}")
    if failed:
        print(f"{len(failed)} symbol(s) left to migrate: run again")
    return 1 if failed or refreshed.failed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
