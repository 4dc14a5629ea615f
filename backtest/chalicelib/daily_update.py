"""The daily update: each NYSE session's raw bar for every tracked symbol, and the
day's splits and dividends, into PostgreSQL and the lake. Runs after the close as its
own Lambda function (22:30 UTC, after 16:00 New York in both EST and EDT);
``python -m batch.daily_update`` runs it by hand, and ``make run`` on an interval.

- **Three upstream calls a day, whatever the number of symbols**: Polygon's grouped
  daily bars (every ticker's bar for one date, ``adjusted=false``: as traded), the
  splits executed that day and the dividends going ex that day (each one call for
  every ticker, kept for the tracked ones).
- **Which days.** Tracked symbols are those in the ``symbols`` table. History is
  filled through the newest stored day of any of them; every NYSE session after
  that, up to the latest one whose update is due, is missing. They are filled
  oldest first, at most ``DAILY_UPDATE_MAX_DAYS`` a run; the rest are left for the
  next run and reported. A holiday is not a session, so it costs nothing. A day
  Polygon has no bars for yet stops the run there, to be tried again.
- **A split changes no stored bar.** Bars are raw; a new split (or dividend) is
  stored beside them and changes only the factors applied on read
  (``shared.adjustment``). A symbol still stored split-adjusted (from before raw
  bars) that splits is migrated there and then: its raw history and actions fetched
  and stored in place of the old, since the old cannot join the new raw bar.
- **Idempotent.** A filled day is not asked for again; filling it again (by hand,
  ``--day``) changes no row and no object, since writes happen only where a value
  differs.
- **Gaps.** A symbol whose newest stored bar is older than the session before the
  day being filled (it had no bar for a while, or was added behind the others)
  has the gap fetched with the ingestion path first, so its history has no hole.
- **Budget.** Every call is charged to the shared upstream budget; 429s and a spent
  budget are waited out within the run's patience (bounded by the function's time),
  then the run stops and reports what is left.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared import polygon, postgres
from shared.adjustment import factor_disagreements
from shared.market_calendar import latest_due_session, previous_session, sessions_between

from . import lake_writer, postgres_writer
from .loading import (
    FetchedActions,
    OutOfPatience,
    Patience,
    Rejected,
    Stored,
    WaitingBudget,
    action_rows,
    bar_from,
    fetch_actions,
    fetch_history,
    parse_action,
    patient_call,
    store,
    validate,
)
from .service import window_start

log = logging.getLogger(__name__)


@dataclass
class UpdateReport:
    job = "daily-update"
    due: str = ""
    tracked: int = 0
    days_filled: list[str] = field(default_factory=list)
    days_left: list[str] = field(default_factory=list)
    updated: set[str] = field(default_factory=set)
    # The day's corporate actions stored for tracked symbols, and the split-adjusted
    # symbols a split migrated to raw bars.
    splits: list[str] = field(default_factory=list)
    dividends: list[str] = field(default_factory=list)
    migrated: list[str] = field(default_factory=list)
    gaps_filled: list[str] = field(default_factory=list)
    lake_caught_up: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # session -> every tracked symbol that got no bar in it, by name
    without_bar: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    # symbol -> where the vendor's cumulative adjustment factors and ours disagree
    factor_disagreements: dict[str, list[str]] = field(default_factory=dict)
    stopped: str | None = None
    calls: int = 0
    rows_changed: int = 0
    lake_objects_written: int = 0
    pruned: int = 0
    # The indicator states brought current (indicator_states.StatesRefreshed.to_dict()).
    indicators: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def failure(self) -> str | None:
        """Why this run could not do its job, or None: it stopped before storing a session
        it should have (PostgreSQL, the vendor, the budget). Nothing due, or some symbols
        failing while the day was stored, is a run that did its job."""
        if self.stopped and not self.days_filled and (self.days_left or "PostgreSQL" in self.stopped):
            return self.stopped
        return None

    def metrics(self) -> dict[str, float]:
        return {
            "UpdatesCompleted": 0.0 if self.failure() else 1.0,
            "DaysFilled": len(self.days_filled),
            "UpdateUpstreamCalls": self.calls,
            "SymbolsWritten": len(self.updated),
            "UpdateStopped": 1.0 if self.stopped and self.days_left else 0.0,
        }

    def stored(self, symbol: str, result: Stored) -> None:
        """Counts what ``loading.store`` wrote for one symbol."""
        self.updated.add(symbol)
        self.rows_changed += result.recent_rows_changed
        self.lake_objects_written += int(result.lake_changed)
        if result.factor_disagreements:
            self.factor_disagreements[symbol] = result.factor_disagreements

    def to_dict(self) -> dict:
        updated = sorted(self.updated)
        return {
            "due": self.due,
            "tracked": self.tracked,
            "days_filled": self.days_filled,
            "days_left": self.days_left,
            "updated": len(updated),
            "updated_symbols": updated if len(updated) <= 50 else updated[:50] + [f"... {len(updated) - 50} more"],
            "splits": self.splits,
            "dividends": self.dividends,
            "migrated": self.migrated,
            "gaps_filled": self.gaps_filled,
            "lake_caught_up": self.lake_caught_up,
            "rejected": [{"symbol": r.symbol, "day": r.day, "reason": r.reason} for r in self.rejected],
            "without_bar": self.without_bar,
            "failed": self.failed,
            "factor_disagreements": self.factor_disagreements,
            "stopped": self.stopped,
            "upstream_calls": self.calls,
            "rows_changed": self.rows_changed,
            "lake_objects_written": self.lake_objects_written,
            "pruned": self.pruned,
            "indicators": self.indicators,
            "timings": self.timings,
        }


class CountingBudget:
    """Counts the calls charged, for the report."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def acquire(self) -> None:
        self.inner.acquire()
        self.calls += 1


def tracked_symbols(conn) -> dict[str, tuple[date, date]]:
    """Every tracked symbol's (first day, last day)."""
    return {
        symbol: (first, last) for symbol, first, last in conn.run("SELECT symbol, first_day, last_day FROM symbols")
    }


def legacy_symbols(conn) -> set[str]:
    """Symbols still stored split-adjusted, from before raw bars."""
    return {row[0] for row in conn.run("SELECT symbol FROM symbols WHERE basis = 'split'")}


def previous_closes(conn, symbols: list[str], day: date) -> dict[str, tuple[date, float]]:
    """Each symbol's last stored bar before ``day``: (its day, its close), in one query."""
    rows = conn.run(
        """
        SELECT DISTINCT ON (symbol) symbol, day, close FROM daily_bars
        WHERE symbol = ANY(:symbols) AND day < :day ORDER BY symbol, day DESC
        """,
        symbols=symbols,
        day=day,
    )
    return {symbol: (d, close) for symbol, d, close in rows}


def run_daily_update(
    settings,
    database,
    lake,
    gateway,
    budget,
    now: datetime | None = None,
    day: date | None = None,
    patience: Patience | None = None,
    lake_workers: int = 16,
) -> UpdateReport:
    """Fill the missing sessions (or just ``day``, again); see the module's docstring."""
    now = now or datetime.now(UTC)
    patience = patience or Patience(settings.ingest_max_wait_s)
    counting = CountingBudget(WaitingBudget(budget, patience))
    report = UpdateReport()
    started = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        report.timings[name] = round(report.timings.get(name, 0) + time.perf_counter() - mark, 3)
        mark = time.perf_counter()

    due = latest_due_session(now, settings.recent_as_of)
    report.due = due.isoformat()
    try:
        _update(settings, database, lake, gateway, counting, patience, report, due, day, lap, started, lake_workers)
        keep_indicators_current(settings, database, lake, report)
        lap("indicators_s")
        return report
    except postgres.DatabaseUnavailable as exc:
        # Nothing is lost: a day not stored is still missing, and the next run fills it.
        log.error("daily update stopped, PostgreSQL unavailable: %s", exc)
        report.stopped = "PostgreSQL is unavailable: the days not stored are filled by the next run"
        report.calls = counting.calls
        return report


def _update(
    settings, database, lake, gateway, counting, patience, report, due, day, lap, started, lake_workers
) -> UpdateReport:
    tracked = database.run(tracked_symbols)
    report.tracked = len(tracked)
    if not tracked:
        report.stopped = "no symbol is tracked yet: ingest some history first (make ingest)"
        return report
    if day is not None:
        days = [day]
    else:
        filled_through = max(last for _, last in tracked.values())
        days = sessions_between(filled_through + timedelta(days=1), due)
        if len(days) > settings.daily_update_max_days:
            report.days_left = [d.isoformat() for d in days[settings.daily_update_max_days :]]
            days = days[: settings.daily_update_max_days]
    today = due  # no bar may be dated after the latest due session
    since = window_start(settings, due)
    lap("plan_s")

    for session in days:
        try:
            results = patient_call(lambda s=session: gateway.grouped_daily(s), counting, settings, patience)
        except (polygon.UpstreamError, polygon.BudgetExceeded, OutOfPatience) as exc:
            report.stopped = f"{session}: {exc}"
            report.days_left = [d.isoformat() for d in days[days.index(session) :]] + report.days_left
            break
        lap("fetch_s")
        if not results:
            # Not a trading day after all, or Polygon does not have it yet: try again next run.
            report.stopped = f"{session}: Polygon has no bars for this day yet"
            report.days_left = [d.isoformat() for d in days[days.index(session) :]] + report.days_left
            break
        try:
            day_splits = day_actions(gateway, counting, settings, patience, "splits", session, tracked)
            day_dividends = day_actions(gateway, counting, settings, patience, "dividends", session, tracked)
        except (polygon.UpstreamError, polygon.BudgetExceeded, OutOfPatience) as exc:
            # The bars without the day's actions would adjust wrongly: the day waits, whole.
            report.stopped = f"{session}: the day's splits and dividends could not be had: {exc}"
            report.days_left = [d.isoformat() for d in days[days.index(session) :]] + report.days_left
            break
        lap("fetch_s")
        bars = {}
        for r in results:
            symbol = r.get("T")
            if symbol in tracked:
                try:
                    bars[symbol] = bar_from(r)
                except polygon.UpstreamError as exc:
                    report.rejected.append(Rejected(symbol, session.isoformat(), exc.message))
        report.without_bar[session.isoformat()] = sorted(set(tracked) - set(bars))
        good = {}
        for symbol, bar in bars.items():
            kept, rejected = validate(symbol, [bar], today)
            report.rejected.extend(rejected)
            if kept and kept[0].day == session:
                good[symbol] = kept[0]
            elif kept:
                report.rejected.append(Rejected(symbol, session.isoformat(), f"the bar is dated {kept[0].day}"))
        wanted = sorted(set(good) | {a.symbol for a in day_dividends.actions})
        before = database.run(lambda c, s=session, w=wanted: previous_closes(c, w, s))
        expected_previous = previous_session(session)
        # A dividend's factor needs the raw close of the session before its ex-date.
        dividends = [
            a._replace(prev_close=before[a.symbol][1], prev_day=before[a.symbol][0]) if a.symbol in before else a
            for a in day_dividends.actions
        ]
        legacy = database.run(legacy_symbols)
        migrate, gaps, append = [], [], {}
        split_today = {a.symbol for a in day_splits.actions}
        for symbol, bar in good.items():
            prev = before.get(symbol)
            if symbol in legacy and symbol in split_today:
                migrate.append(symbol)
            elif prev is not None and prev[0] < expected_previous:
                gaps.append((symbol, prev[0]))
            else:
                append[symbol] = bar
        new = day_splits.actions + dividends
        if new:
            vendor_factors = {**day_splits.vendor_factors, **day_dividends.vendor_factors}
            store_day_actions(database, lake, new, vendor_factors, set(migrate), report)
            report.splits += sorted({a.symbol for a in day_splits.actions})
            report.dividends += sorted({a.symbol for a in dividends})
        lap("check_s")

        for symbol in migrate:
            try:
                first_day = tracked[symbol][0]
                history = fetch_history(gateway, counting, settings, symbol, first_day, session, patience)
                history, rejected = validate(symbol, history, today)
                report.rejected.extend(rejected)
                actions = fetch_actions(gateway, counting, settings, symbol, patience)
                report.stored(symbol, store(symbol, history, database, lake, since, replace=True, actions=actions))
                report.migrated.append(symbol)
            except Exception as exc:  # noqa: BLE001 - one symbol's failure never stops the others
                report.failed[symbol] = f"migration to raw bars: {type(exc).__name__}: {exc}"
        for symbol, last in gaps:
            try:
                missing = fetch_history(
                    gateway, counting, settings, symbol, last + timedelta(days=1), session, patience
                )
                missing, rejected = validate(symbol, missing, today)
                report.rejected.extend(rejected)
                basis = "split" if symbol in legacy else "raw"
                report.stored(symbol, store(symbol, missing, database, lake, since, basis=basis))
                report.gaps_filled.append(symbol)
            except Exception as exc:  # noqa: BLE001 - one symbol's failure never stops the others
                report.failed[symbol] = f"gap: {type(exc).__name__}: {exc}"
        lap("migrate_s")

        recent = {s: b for s, b in append.items() if b.day >= since}

        def write(conn, recent=recent, append=append):
            changed = postgres_writer.upsert_many(conn, recent)
            postgres_writer.extend_spans(conn, {s: b.day for s, b in append.items()})
            return changed

        changed_rows = database.run(write)
        report.rows_changed += len(changed_rows)
        report.updated |= changed_rows
        lap("postgres_s")

        def to_lake(item):
            symbol, bars, joins_after = item
            try:
                return symbol, lake_writer.append(lake, symbol, bars, joins_after), None
            except lake_writer.LakeBehind as exc:
                return symbol, False, exc
            except Exception as exc:  # noqa: BLE001 - reported; PostgreSQL holds the bar, a later run adds it
                return symbol, False, f"lake: {type(exc).__name__}: {exc}"

        def write_lake(items) -> dict[str, date]:
            behind = {}
            with ThreadPoolExecutor(max_workers=lake_workers, thread_name_prefix="lake-append") as pool:
                for symbol, written, outcome in pool.map(to_lake, items):
                    report.lake_objects_written += written
                    if isinstance(outcome, lake_writer.LakeBehind):
                        behind[symbol] = outcome.last
                    elif outcome:
                        report.failed[symbol] = outcome
                    elif written:
                        report.updated.add(symbol)
            return behind

        behind = write_lake([(s, [b], expected_previous) for s, b in sorted(append.items())])
        if behind:
            # An earlier run stored these bars in PostgreSQL but failed to write them to
            # the lake: they are added now, from PostgreSQL, with this session's.
            missed = database.run(lambda c, b=behind, s=session: postgres.read_after(c, b, s))
            write_lake([(s, missed.get(s) or [append[s]], None) for s in sorted(behind)])
            report.lake_caught_up += sorted(behind)
        lap("lake_s")
        report.days_filled.append(session.isoformat())

    report.pruned = database.run(lambda c: postgres_writer.prune(c, since))
    report.calls = counting.calls
    lap("prune_s")
    report.timings["total_s"] = round(time.perf_counter() - started, 3)
    return report


def keep_indicators_current(settings, database, lake, report: UpdateReport) -> None:
    """Each symbol's indicator state stepped by the bars just stored (or computed from its
    whole history after a split or a migration): what the alerts check reads."""
    from .indicator_states import refresh
    from .service import HistoryService

    refreshed = refresh(database, HistoryService(settings, database, lake), rewritten=set(report.migrated))
    report.indicators = refreshed.to_dict()
    for symbol, why in refreshed.failed.items():
        report.failed.setdefault(symbol, f"indicator state: {why}")


def day_actions(gateway, budget, settings, patience, kind: str, session: date, tracked) -> FetchedActions:
    """The splits executed, or the dividends going ex, on ``session``, of tracked symbols:
    one call for every ticker (more only past 5,000 in a day)."""
    field = "execution_date" if kind == "splits" else "ex_dividend_date"
    rows = action_rows(gateway, budget, settings, patience, kind, **{field: session.isoformat()})
    return FetchedActions.of([parse_action(kind, row["ticker"], row) for row in rows if row.get("ticker") in tracked])


def store_day_actions(database, lake, new: list, vendor_factors: dict, migrating: set[str], report) -> None:
    """The day's actions into PostgreSQL (each replacing what was stored for its symbol,
    kind and day), then each symbol's whole list, as PostgreSQL now has it, into its lake
    object, and the vendor's cumulative factors checked against ours from that list."""
    database.run(lambda c: postgres_writer.upsert_actions(c, new))
    symbols = sorted({a.symbol for a in new})
    stored = database.run(lambda c: postgres.read_actions(c, symbols))
    for symbol in symbols:
        disagreements = factor_disagreements(stored[symbol], vendor_factors)
        if disagreements:
            log.warning("%s: the vendor's adjustment factors disagree with ours: %s", symbol, disagreements)
            report.factor_disagreements[symbol] = disagreements
        if symbol in migrating:
            continue  # its migration writes the lake's actions whole
        try:
            lake_writer.write_actions(lake, symbol, stored[symbol])
        except Exception as exc:  # noqa: BLE001 - PostgreSQL holds them; reported
            report.failed[symbol] = f"lake actions: {type(exc).__name__}: {exc}"
