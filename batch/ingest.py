"""Load daily bars into both tiers: the batch layer's interface.

    python -m batch.ingest --symbols AAPL,MSFT --from 2000-01-01 --to 2024-12-31
    python -m batch.ingest --csv bars.csv [--symbol AAPL] [--no-actions]

Raw bars, as traded: from Polygon's aggregates endpoint (1/day, ``adjusted=false``,
every ``next_url`` page) or from a CSV file (``Date,Open,High,Low,Close,Volume``,
with a ``Symbol`` column or ``--symbol``), and each symbol's whole history of
splits and dividends from Polygon's reference endpoints (for a CSV too, unless
``--no-actions`` says its symbols have none). Every row is validated; rejected rows are reported
by symbol and date. Writing is idempotent (a re-run changes nothing) and
resumable (symbols finished by an interrupted run with the same arguments
are skipped). One symbol's failure is reported without stopping the others.
After loading, PostgreSQL is pruned to the recent window; the lake keeps all.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from backtest.chalicelib import postgres_writer
from backtest.chalicelib.indicator_states import refresh
from backtest.chalicelib.loading import (
    FetchedActions,
    Patience,
    Rejected,
    UnknownTicker,
    WaitingBudget,
    fetch_actions,
    fetch_history,
    store,
    validate,
)
from backtest.chalicelib.service import market_today, window_start
from shared.bars import DailyBar
from shared.symbols import normalize, parse_symbol

log = logging.getLogger(__name__)


@dataclass
class SymbolResult:
    symbol: str
    rows: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    splits: int = 0
    dividends: int = 0
    # Stored actions the vendor no longer lists (the deprecated endpoints' own): kept.
    actions_kept: list[str] = field(default_factory=list)
    factor_disagreements: list[str] = field(default_factory=list)
    lake_changed: bool = False
    recent_rows_changed: int = 0
    error: str | None = None
    skipped: bool = False
    unknown: bool = False


def from_csv(path: Path, symbol: str | None) -> tuple[dict[str, list[DailyBar]], list[Rejected]]:
    """Rows by symbol, and the rows that could not even be read."""
    out: dict[str, list[DailyBar]] = {}
    unreadable = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = {name.lower(): name for name in reader.fieldnames or []}
        missing = {"date", "open", "high", "low", "close", "volume"} - set(fields)
        if missing:
            raise SystemExit(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        sym_col = fields.get("symbol") or fields.get("ticker")
        if not sym_col and not symbol:
            raise SystemExit(f"{path}: no Symbol column; pass --symbol")
        for line, row in enumerate(reader, start=2):
            sym = normalize((symbol or row[sym_col]).strip())
            try:
                bar = DailyBar(
                    date.fromisoformat(row[fields["date"]].strip()[:10]),
                    float(row[fields["open"]]),
                    float(row[fields["high"]]),
                    float(row[fields["low"]]),
                    float(row[fields["close"]]),
                    float(row[fields["volume"]]),
                )
            except (TypeError, ValueError) as exc:
                unreadable.append(Rejected(sym, row.get(fields["date"], f"line {line}"), f"unreadable row: {exc}"))
                continue
            out.setdefault(sym, []).append(bar)
    return out, unreadable


def run_key(args) -> str:
    basis = f"{args.csv and Path(args.csv).resolve()}|{args.symbol}|{args.symbols}|{args.start}|{args.end}"
    if args.csv:
        basis += hashlib.sha256(Path(args.csv).read_bytes()).hexdigest()
    return hashlib.sha256(basis.encode()).hexdigest()[:24]


def main(argv=None, runtime=None) -> int:
    parser = argparse.ArgumentParser(prog="ingest", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--symbols", help="comma-separated symbols to load from Polygon")
    parser.add_argument("--from", dest="start", type=date.fromisoformat, help="first date (YYYY-MM-DD)")
    parser.add_argument("--to", dest="end", type=date.fromisoformat, help="last date (default: today)")
    parser.add_argument("--csv", help="load this CSV file instead of Polygon")
    parser.add_argument("--symbol", help="the symbol of every row of a CSV without a Symbol column")
    parser.add_argument("--force", action="store_true", help="redo symbols an earlier identical run finished")
    parser.add_argument(
        "--no-actions", action="store_true", help="a CSV's symbols had no splits or dividends: ask Polygon for none"
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="seconds this run may wait on the upstream's 429s and the call budget, in all "
        "(default: INGEST_MAX_WAIT_S)",
    )
    args = parser.parse_args(argv)
    if bool(args.csv) == bool(args.symbols):
        parser.error("give either --symbols (with --from) or --csv")
    if args.symbols and not args.start:
        parser.error("--symbols needs --from")

    if runtime is None:
        from backtest.chalicelib.runtime import BacktestRuntime

        runtime = BacktestRuntime()
    settings = runtime.settings
    today = market_today()
    since = window_start(settings, today)
    key = run_key(args)
    results: list[SymbolResult] = []
    early_rejects: list[Rejected] = []

    patience = Patience(settings.ingest_max_wait_s if args.max_wait is None else args.max_wait)
    budget = WaitingBudget(runtime.upstream_budget, patience)
    if args.csv:
        loaded, early_rejects = from_csv(Path(args.csv), args.symbol and normalize(args.symbol))
        symbols = sorted(loaded)
    else:
        symbols = [parse_symbol(s.strip()) for s in args.symbols.split(",") if s.strip()]

    done = set()
    if not args.force:
        done = {
            row[0]
            for row in runtime.database.run(
                lambda c: c.run("SELECT symbol FROM ingest_progress WHERE run_key = :k", k=key)
            )
        }

    from tqdm import tqdm

    for symbol in tqdm(symbols, desc="ingest", unit="symbol", disable=None, file=sys.stderr):
        result = SymbolResult(symbol)
        results.append(result)
        if symbol in done:
            result.skipped = True
            continue
        try:
            if args.csv:
                raw = loaded[symbol]
            else:
                raw = fetch_history(runtime.polygon, budget, settings, symbol, args.start, args.end or today, patience)
            result.rows = len(raw)
            good, result.rejected = validate(symbol, raw, today)
            actions = (
                FetchedActions([], {})
                if args.no_actions
                else fetch_actions(runtime.polygon, budget, settings, symbol, patience)
            )
            result.splits = sum(a.kind == "split" for a in actions.actions)
            result.dividends = len(actions.actions) - result.splits
            stored = store(symbol, good, runtime.database, runtime.lake, since, actions=actions)
            result.lake_changed, result.recent_rows_changed = stored.lake_changed, stored.recent_rows_changed
            result.actions_kept = [f"{a.day} {a.kind} {a.ref}" for a in stored.actions_kept]
            result.factor_disagreements = stored.factor_disagreements
            runtime.database.run(
                lambda c, s=symbol: c.run(
                    "INSERT INTO ingest_progress (run_key, symbol) VALUES (:k, :s) ON CONFLICT DO NOTHING", k=key, s=s
                )
            )
        except UnknownTicker as exc:
            result.unknown = True
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported per symbol; the others go on
            result.error = f"{type(exc).__name__}: {exc}"
            log.debug("ingest of %s failed", symbol, exc_info=True)

    pruned = runtime.database.run(lambda c: postgres_writer.prune(c, since))
    # Their histories were (re)written: their indicator states start over from them.
    stored_now = {r.symbol for r in results if not (r.skipped or r.unknown or r.error)}
    refreshed = refresh(runtime.database, runtime.history, symbols=stored_now, rewritten=stored_now)
    print(f"indicator states: {refreshed.to_dict()}")
    return report(results, early_rejects, pruned, since) or int(bool(refreshed.failed))


def report(results: list[SymbolResult], early_rejects: list[Rejected], pruned: int, since: date) -> int:
    for r in results:
        if r.skipped:
            print(f"{r.symbol}: skipped (finished by an earlier run with the same arguments; --force redoes it)")
        elif r.unknown:
            print(f"{r.symbol}: UNKNOWN: {r.error}")
        elif r.error:
            print(f"{r.symbol}: FAILED: {r.error}")
        else:
            print(
                f"{r.symbol}: {r.rows} rows, {len(r.rejected)} rejected, {r.splits} splits, {r.dividends} dividends, "
                f"lake {'updated' if r.lake_changed else 'unchanged'}, {r.recent_rows_changed} recent rows changed"
            )
            for kept in r.actions_kept:
                print(f"  {r.symbol} {kept}: stored before, not in the vendor's list now: kept")
            for line in r.factor_disagreements:
                print(f"  {r.symbol} {line}")
    rejected = early_rejects + [x for r in results for x in r.rejected]
    if rejected:
        print(f"\nRejected rows ({len(rejected)}):")
        for x in rejected:
            print(f"  {x.symbol} {x.day}: {x.reason}")
    print(f"\nRecent tier holds {since} onwards; {pruned} older rows pruned from PostgreSQL.")
    failed = [r.symbol for r in results if r.error]
    if failed:
        print(f"{len(failed)} symbol(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
