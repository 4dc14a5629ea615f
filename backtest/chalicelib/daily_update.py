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
from shared.bars import DailyBar
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
    due = latest_due_session(now, settings.recent_as_of)
    run = UpdateRun(settings, database, lake, gateway, counting, patience, due, lake_workers)
    run.report.due = due.isoformat()
    try:
        run.fill(day)
        keep_indicators_current(settings, database, lake, run.report)
        run.lap("indicators_s")
        return run.report
    except postgres.DatabaseUnavailable as exc:
        # Nothing is lost: a day not stored is still missing, and the next run fills it.
        log.error("daily update stopped, PostgreSQL unavailable: %s", exc)
        run.report.stopped = "PostgreSQL is unavailable: the days not stored are filled by the next run"
        run.report.calls = counting.calls
        return run.report


class StopRun(Exception):
    """This session cannot be filled now (the vendor failed, or has no bars for it yet):
    it and every later one are left for the next run."""


@dataclass
class SessionBars:
    """One session's bars sorted by what each symbol needs: appended as they are, its
    history re-fetched raw (a split-adjusted symbol that splits today), or its gap
    fetched first (its newest bar is older than the session before)."""

    append: dict[str, DailyBar] = field(default_factory=dict)
    migrate: list[str] = field(default_factory=list)
    gaps: list[tuple[str, date]] = field(default_factory=list)


class UpdateRun:
    """One run of the daily update, in phases: plan the sessions, then for each one
    fetch, sort, store the day's actions, repair the symbols that need it, write
    PostgreSQL, write the lake; then prune. Each phase's time is in the report."""

    def __init__(self, settings, database, lake, gateway, counting, patience, due: date, lake_workers: int):
        self.settings, self.database, self.lake, self.gateway = settings, database, lake, gateway
        self.counting, self.patience, self.lake_workers = counting, patience, lake_workers
        self.due = due  # no bar may be dated after the latest due session
        self.since = window_start(settings, due)
        self.report = UpdateReport()
        self.tracked: dict[str, tuple[date, date]] = {}
        self.legacy: set[str] = set()  # symbols still stored split-adjusted
        self.started = self._mark = time.perf_counter()

    def lap(self, name: str) -> None:
        timings = self.report.timings
        timings[name] = round(timings.get(name, 0) + time.perf_counter() - self._mark, 3)
        self._mark = time.perf_counter()

    def fill(self, day: date | None) -> None:
        days = self.plan(day)
        if days is None:
            return
        for session in days:
            try:
                self.fill_session(session)
            except StopRun as stop:
                self.report.stopped = f"{session}: {stop}"
                self.report.days_left = [d.isoformat() for d in days[days.index(session) :]] + self.report.days_left
                break
            self.report.days_filled.append(session.isoformat())
        self.report.pruned = self.database.run(lambda c: postgres_writer.prune(c, self.since))
        self.report.calls = self.counting.calls
        self.lap("prune_s")
        self.report.timings["total_s"] = round(time.perf_counter() - self.started, 3)

    def plan(self, day: date | None) -> list[date] | None:
        """The sessions to fill: ``day``, or every one missing up to the due one, oldest
        first, at most ``DAILY_UPDATE_MAX_DAYS`` (the rest reported as left). None: there
        is nothing to update."""
        self.tracked = self.database.run(tracked_symbols)
        self.report.tracked = len(self.tracked)
        if not self.tracked:
            self.report.stopped = "no symbol is tracked yet: ingest some history first (make ingest)"
            return None
        if day is not None:
            days = [day]
        else:
            filled_through = max(last for _, last in self.tracked.values())
            days = sessions_between(filled_through + timedelta(days=1), self.due)
            most = self.settings.daily_update_max_days
            if len(days) > most:
                self.report.days_left = [d.isoformat() for d in days[most:]]
                days = days[:most]
        self.lap("plan_s")
        return days

    def fill_session(self, session: date) -> None:
        results, day_splits, day_dividends = self.fetch(session)
        good = self.good_bars(session, results)
        before = self.database.run(
            lambda c: previous_closes(c, sorted(set(good) | {a.symbol for a in day_dividends.actions}), session)
        )
        # A dividend's factor needs the raw close of the session before its ex-date.
        dividends = [
            a._replace(prev_close=before[a.symbol][1], prev_day=before[a.symbol][0]) if a.symbol in before else a
            for a in day_dividends.actions
        ]
        sorted_bars = self.sort(session, good, before, {a.symbol for a in day_splits.actions})
        new = day_splits.actions + dividends
        if new:
            vendor_factors = {**day_splits.vendor_factors, **day_dividends.vendor_factors}
            store_day_actions(self.database, self.lake, new, vendor_factors, set(sorted_bars.migrate), self.report)
            self.report.splits += sorted({a.symbol for a in day_splits.actions})
            self.report.dividends += sorted({a.symbol for a in dividends})
        self.lap("check_s")
        self.repair(session, sorted_bars)
        self.lap("migrate_s")
        self.write_postgres(sorted_bars.append)
        self.lap("postgres_s")
        self.write_lake(session, sorted_bars.append)
        self.lap("lake_s")

    def fetch(self, session: date) -> tuple[list[dict], FetchedActions, FetchedActions]:
        """The session's grouped daily bars, splits and dividends: three vendor calls."""
        failures = (polygon.UpstreamError, polygon.BudgetExceeded, OutOfPatience)
        try:
            results = patient_call(
                lambda: self.gateway.grouped_daily(session), self.counting, self.settings, self.patience
            )
        except failures as exc:
            raise StopRun(str(exc)) from exc
        self.lap("fetch_s")
        if not results:
            # Not a trading day after all, or Polygon does not have it yet: try again next run.
            raise StopRun("Polygon has no bars for this day yet")
        try:
            splits, dividends = (
                day_actions(self.gateway, self.counting, self.settings, self.patience, kind, session, self.tracked)
                for kind in ("splits", "dividends")
            )
        except failures as exc:
            # The bars without the day's actions would adjust wrongly: the day waits, whole.
            raise StopRun(f"the day's splits and dividends could not be had: {exc}") from exc
        self.lap("fetch_s")
        return results, splits, dividends

    def good_bars(self, session: date, results: list[dict]) -> dict[str, DailyBar]:
        """The tracked symbols' bars that pass validation and are dated ``session``."""
        bars = {}
        for r in results:
            symbol = r.get("T")
            if symbol in self.tracked:
                try:
                    bars[symbol] = bar_from(r)
                except polygon.UpstreamError as exc:
                    self.report.rejected.append(Rejected(symbol, session.isoformat(), exc.message))
        self.report.without_bar[session.isoformat()] = sorted(set(self.tracked) - set(bars))
        good = {}
        for symbol, bar in bars.items():
            kept, rejected = validate(symbol, [bar], self.due)
            self.report.rejected.extend(rejected)
            if kept and kept[0].day == session:
                good[symbol] = kept[0]
            elif kept:
                self.report.rejected.append(Rejected(symbol, session.isoformat(), f"the bar is dated {kept[0].day}"))
        return good

    def sort(self, session: date, good: dict[str, DailyBar], before: dict, split_today: set[str]) -> SessionBars:
        legacy = self.database.run(legacy_symbols)
        expected_previous = previous_session(session)
        out = SessionBars()
        for symbol, bar in good.items():
            prev = before.get(symbol)
            if symbol in legacy and symbol in split_today:
                out.migrate.append(symbol)
            elif prev is not None and prev[0] < expected_previous:
                out.gaps.append((symbol, prev[0]))
            else:
                out.append[symbol] = bar
        self.legacy = legacy
        return out

    def repair(self, session: date, sorted_bars: SessionBars) -> None:
        """Migrate the split-adjusted symbols that split today; fill each symbol's gap."""
        fetching = (self.gateway, self.counting, self.settings)
        for symbol in sorted_bars.migrate:
            try:
                history = fetch_history(*fetching, symbol, self.tracked[symbol][0], session, self.patience)
                history, rejected = validate(symbol, history, self.due)
                self.report.rejected.extend(rejected)
                actions = fetch_actions(*fetching, symbol, self.patience)
                stored = store(symbol, history, self.database, self.lake, self.since, replace=True, actions=actions)
                self.report.stored(symbol, stored)
                self.report.migrated.append(symbol)
            except Exception as exc:  # noqa: BLE001 - one symbol's failure never stops the others
                self.report.failed[symbol] = f"migration to raw bars: {type(exc).__name__}: {exc}"
        for symbol, last in sorted_bars.gaps:
            try:
                missing = fetch_history(*fetching, symbol, last + timedelta(days=1), session, self.patience)
                missing, rejected = validate(symbol, missing, self.due)
                self.report.rejected.extend(rejected)
                basis = "split" if symbol in self.legacy else "raw"
                self.report.stored(symbol, store(symbol, missing, self.database, self.lake, self.since, basis=basis))
                self.report.gaps_filled.append(symbol)
            except Exception as exc:  # noqa: BLE001 - one symbol's failure never stops the others
                self.report.failed[symbol] = f"gap: {type(exc).__name__}: {exc}"

    def write_postgres(self, append: dict[str, DailyBar]) -> None:
        recent = {s: b for s, b in append.items() if b.day >= self.since}

        def write(conn):
            changed = postgres_writer.upsert_many(conn, recent)
            postgres_writer.extend_spans(conn, {s: b.day for s, b in append.items()})
            return changed

        changed_rows = self.database.run(write)
        self.report.rows_changed += len(changed_rows)
        self.report.updated |= changed_rows

    def write_lake(self, session: date, append: dict[str, DailyBar]) -> None:
        expected_previous = previous_session(session)
        behind = self._append_to_lake([(s, [b], expected_previous) for s, b in sorted(append.items())])
        if behind:
            # An earlier run stored these bars in PostgreSQL but failed to write them to
            # the lake: they are added now, from PostgreSQL, with this session's.
            missed = self.database.run(lambda c: postgres.read_after(c, behind, session))
            self._append_to_lake([(s, missed.get(s) or [append[s]], None) for s in sorted(behind)])
            self.report.lake_caught_up += sorted(behind)

    def _append_to_lake(self, items) -> dict[str, date]:
        """Each symbol's bars appended to its object; the symbols whose object is behind."""

        def one(item):
            symbol, bars, joins_after = item
            try:
                return symbol, lake_writer.append(self.lake, symbol, bars, joins_after), None
            except lake_writer.LakeBehind as exc:
                return symbol, False, exc
            except Exception as exc:  # noqa: BLE001 - reported; PostgreSQL holds the bar, a later run adds it
                return symbol, False, f"lake: {type(exc).__name__}: {exc}"

        behind = {}
        with ThreadPoolExecutor(max_workers=self.lake_workers, thread_name_prefix="lake-append") as pool:
            for symbol, written, outcome in pool.map(one, items):
                self.report.lake_objects_written += written
                if isinstance(outcome, lake_writer.LakeBehind):
                    behind[symbol] = outcome.last
                elif outcome:
                    self.report.failed[symbol] = outcome
                elif written:
                    self.report.updated.add(symbol)
        return behind


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
