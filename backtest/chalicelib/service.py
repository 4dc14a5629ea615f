"""Historical bars across the two tiers, with pagination that never splits a bar.

Routing by the recent window ``[window_start, as_of]``:
- a range inside the window reads PostgreSQL;
- a range wholly before it reads the lake;
- a range across it reads the lake before ``window_start`` and PostgreSQL
  from ``window_start`` on, so the seam has no missing and no doubled day;
- PostgreSQL unreachable: everything from the lake, which holds all of it.

Bars are stored raw and adjusted as ``adjustment`` asks (``raw``, ``split`` (the
default), ``all``; ``shared.adjustment``) by the symbol's splits and dividends,
each tier's part from what it holds (a store not yet migrated from split-adjusted
bars answers ``split`` as stored and 409 ``adjustment_unavailable`` for the others).
N-day bars and overlays are built from the adjusted daily bars.

Overlays (``sma(n)``, ``ema(n)``) are computed on daily closes with the same
definitions the alerts check uses (``shared.indicators``): an EMA over the symbol's
whole stored history (read from its first day), an SMA over its last n closes; each is reported at each
bar's last session: on a 5d chart, ``sma(50)`` at a bar is the daily SMA on the
day the bar closes, which is what ``close < sma(50)`` compares on that day.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from shared import postgres
from shared.adjustment import ADJUSTMENTS, DEFAULT_ADJUSTMENT, adjust, listed
from shared.bars import DailyBar, aggregate, parse_interval
from shared.config import Settings
from shared.errors import ApiError, bad_request, not_found, unavailable
from shared.indicators import MAX_PERIOD, ema_series, sma_series
from shared.market_calendar import NEW_YORK
from shared.postgres import DatabaseUnavailable
from shared.symbols import parse_symbol

from .lake import Lake

log = logging.getLogger(__name__)
MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000
FORMATS = ("json", "csv", "parquet")
# How far back from the end a range reaches when the caller gives a period instead of a start.
PERIODS = {"1y": 1, "5y": 5, "10y": 10, "all": None}
MAX_OVERLAYS = 4
_ONE_OVERLAY = r"(sma|ema)\(([0-9]{1,3})\)"
_OVERLAY = re.compile(f"^{_ONE_OVERLAY}$")
# The whole parameter, as the OpenAPI document states it.
OVERLAYS_PATTERN = f"^{_ONE_OVERLAY}(,{_ONE_OVERLAY}){{0,{MAX_OVERLAYS - 1}}}$"


def market_today() -> date:
    return datetime.now(NEW_YORK).date()


def seconds_until_next_update(now: datetime | None = None) -> int:
    """Until the next daily update is due (22:30 UTC on the next session) and a little
    after: no split or dividend is stored before then, so no adjusted price changes."""
    from shared.market_calendar import UPDATE_DUE_UTC, is_session

    now = now or datetime.now(UTC)
    day = now.date()
    while True:
        due = datetime.combine(day, UPDATE_DUE_UTC, UTC)
        if due > now and is_session(day):
            return max(60, int((due - now).total_seconds()) + 600)
        day += timedelta(days=1)


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def window_start(settings: Settings, today: date) -> date:
    """The first day of the recent tier: ``RECENT_YEARS`` before ``RECENT_AS_OF`` (or today)."""
    return years_before(settings.recent_as_of or today, settings.recent_years)


@dataclass(frozen=True)
class BarsQuery:
    symbol: str
    interval: str
    sessions: int
    start: date | None
    end: date | None
    limit: int
    cursor: str | None
    format: str
    period: str | None = None
    overlays: tuple[tuple[str, int], ...] = ()
    adjustment: str = DEFAULT_ADJUSTMENT

    def binding(self) -> str:
        """What a cursor is tied to: the same symbol, interval, range and adjustment as
        asked (pages of two adjustments would not join). ``limit``, ``format`` and
        ``overlays`` may change from page to page."""
        raw = f"{self.symbol}|{self.interval}|{self.start}|{self.end}"
        if self.period:
            raw += f"|{self.period}"
        if self.adjustment != DEFAULT_ADJUSTMENT:  # the default's cursors stay as they were
            raw += f"|{self.adjustment}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def overlay_name(overlay: tuple[str, int]) -> str:
    return f"{overlay[0]}({overlay[1]})"


def parse_overlays(raw: str | None) -> tuple[tuple[str, int], ...]:
    """``sma(50),ema(20)``: at most four, each 1 <= n <= 200, de-duplicated in order."""
    if raw is None:
        return ()
    parts = raw.split(",")
    if len(parts) > MAX_OVERLAYS:
        raise bad_request("invalid_overlay", f"at most {MAX_OVERLAYS} overlays per request, got {len(parts)}")
    found: list[tuple[str, int]] = []
    for part in parts:
        match = _OVERLAY.fullmatch(part)
        if not match or not 1 <= int(match.group(2)) <= MAX_PERIOD:
            raise bad_request(
                "invalid_overlay",
                f"an overlay is sma(n) or ema(n) with 1 <= n <= {MAX_PERIOD}, e.g. overlays=sma(50),ema(20); "
                f"got {part!r}",
            )
        overlay = (match.group(1), int(match.group(2)))
        if overlay not in found:
            found.append(overlay)
    return tuple(found)


# Exactly YYYY-MM-DD (RFC 3339's full-date, OpenAPI's "date"): Python's
# fromisoformat also takes 20241231 and week dates, which the contract does not.
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATE = re.compile(DATE_PATTERN)
_WHOLE = re.compile(r"^[0-9]+$")


def _parse_date(params: Mapping[str, str], name: str) -> date | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        if not _DATE.fullmatch(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_request("invalid_date", f"'{name}' must be an ISO date like 2024-12-31, got {raw!r}") from None


def parse_query(params: Mapping[str, str]) -> BarsQuery:
    symbol = parse_symbol(params.get("symbol"))
    interval, sessions = parse_interval(params.get("interval"))
    start, end = _parse_date(params, "start"), _parse_date(params, "end")
    if start and end and start > end:
        raise bad_request("invalid_range", f"start {start} is after end {end}")
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    if not _WHOLE.fullmatch(raw_limit):
        raise bad_request("invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    limit = int(raw_limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request("invalid_limit", f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    fmt = params.get("format", "json")
    if fmt not in FORMATS:
        raise bad_request("invalid_format", f"format must be one of {', '.join(FORMATS)}")
    period = params.get("period")
    if period is not None:
        if period not in PERIODS:
            raise bad_request("invalid_period", f"period must be one of {', '.join(PERIODS)}, got {params['period']!r}")
        if start is not None:
            raise bad_request("conflicting_parameters", "give either 'start' or 'period', not both")
    overlays = parse_overlays(params.get("overlays"))
    cursor = params.get("cursor")
    if cursor == "":
        raise bad_request("invalid_cursor", "the cursor is empty: leave it out for the first page")
    adjustment = params.get("adjustment", DEFAULT_ADJUSTMENT)
    if adjustment not in ADJUSTMENTS:
        raise bad_request(
            "invalid_adjustment",
            f"adjustment must be raw (as traded), split (the default) or all (splits and dividends); got {adjustment!r}",
        )
    return BarsQuery(symbol, interval, sessions, start, end, limit, cursor, fmt, period, overlays, adjustment)


@dataclass
class BarsPage:
    symbol: str
    interval: str
    start: date
    end: date
    source: str
    bars: list[dict]
    next_cursor: str | None
    # The symbol's whole stored history, so a client can offer "all" and say what exists.
    available: tuple[date, date] | None = None
    # Overlay name -> one value per bar (None while the indicator lacks history).
    overlays: dict[str, list[float | None]] = field(default_factory=dict)
    adjustment: str = DEFAULT_ADJUSTMENT
    # The splits and dividends from start to end (shared.adjustment.public).
    corporate_actions: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "adjustment": self.adjustment,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.source,
            "available": (
                {"first": self.available[0].isoformat(), "last": self.available[1].isoformat()}
                if self.available
                else None
            ),
            "bars": self.bars,
            "overlays": self.overlays,
            "corporate_actions": self.corporate_actions,
            "next_cursor": self.next_cursor,
        }


@dataclass(frozen=True)
class PageCursor:
    """Where the next page starts: after the day ``after``, up to the first page's
    ``end``, for the query ``binding`` names (symbol, interval, start, end, adjustment)."""

    after: date
    end: date
    binding: str

    # On the wire as short keys: cursors issued before stay valid.
    def to_json(self) -> dict:
        return {"a": self.after.isoformat(), "e": self.end.isoformat(), "b": self.binding}

    @classmethod
    def from_json(cls, state: dict) -> PageCursor:
        return cls(date.fromisoformat(state["a"]), date.fromisoformat(state["e"]), str(state["b"]))


class CursorCodec:
    """Opaque, signed cursors: ``base64(json).signature``."""

    def __init__(self, secret: str):
        self._key = secret.encode()

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()[:12]).decode()

    def encode(self, cursor: PageCursor) -> str:
        state = cursor.to_json()
        payload = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload.encode())}"

    def decode(self, cursor: str) -> PageCursor:
        invalid = bad_request("invalid_cursor", "the cursor is not one this service issued, or it was altered")
        payload, _, signature = cursor.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload.encode())):
            raise invalid
        try:
            return PageCursor.from_json(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
        except (ValueError, KeyError, TypeError):
            # Signed by us but not a cursor this version reads: refused, never a 500.
            raise invalid from None


class HistoryService:
    def __init__(self, settings: Settings, database: postgres.Database, lake: Lake, today=market_today):
        self.settings = settings
        self.database = database
        self.lake = lake
        self.today = today
        self.cursors = CursorCodec(settings.cursor_secret)

    def window_start(self) -> date:
        return window_start(self.settings, self.today())

    def page(self, query: BarsQuery) -> BarsPage:
        held = None  # the symbol's whole lake history, read once when PostgreSQL is down
        pg_up = True
        try:
            info, actions = self.database.run(
                lambda c: (
                    postgres.symbol_info(c, query.symbol),
                    postgres.read_actions(c, [query.symbol])[query.symbol],
                )
            )
        except DatabaseUnavailable:
            pg_up = False
            held = self._lake_read(query.symbol)
            stored_actions = self._lake_actions(query.symbol)
            actions = stored_actions or []
            info = (
                postgres.SymbolInfo(held[0][0].day, held[0][-1].day, held[1], stored_actions is not None)
                if held and held[0]
                else None
            )
        if info is None:
            raise not_found("unknown_symbol", f"no history is stored for {query.symbol}")
        span = (info.first, info.last)
        context = Adjusting(query.adjustment, actions, info.basis, info.actions_loaded, query.symbol)

        end = query.end or span[1]
        if query.start:
            start = query.start
        elif query.period == "all":
            start = span[0]
        else:
            years = PERIODS[query.period or "1y"]
            assert years is not None  # "all" is answered above
            start = years_before(end, years) + timedelta(days=1)
        if start > end:
            raise bad_request("invalid_range", f"start {start} is after end {end} (the latest bar)")
        fetch_from = start
        if query.cursor:
            cursor = self.cursors.decode(query.cursor)
            if cursor.binding != query.binding():
                raise bad_request(
                    "cursor_mismatch",
                    "the cursor belongs to another query: repeat the same symbol, interval, start, end and adjustment",
                )
            fetch_from = cursor.after + timedelta(days=1)
            # The end as resolved for the first page, so bars ingested meanwhile
            # cannot make the pages differ from the answer the first page began.
            end = cursor.end

        # One row more than the page needs tells whether another page exists.
        need = query.limit * query.sessions + 1
        rows, source = self._read(query.symbol, fetch_from, end, need, pg_up, held, context)
        more = len(rows) >= need
        rows = rows[: query.limit * query.sessions]
        bars = aggregate(rows, query.sessions)
        next_cursor = None
        if more and bars:
            last = rows[-1].day
            next_cursor = self.cursors.encode(PageCursor(last, end, query.binding()))
        overlays = {}
        if query.overlays and rows:
            before = self._warmup(query, rows[0].day, span, pg_up, held, context)
            overlays = overlay_values(query.overlays, before, rows, query.sessions)
        return BarsPage(
            query.symbol,
            query.interval,
            start,
            end,
            source,
            bars,
            next_cursor,
            span,
            overlays,
            query.adjustment,
            listed(actions, start, end),
        )

    def whole_history(self, symbol: str) -> list[DailyBar]:
        """Every stored daily bar of ``symbol`` as ``adjustment=split&period=all`` answers
        it (as traded while its splits are not stored): what its indicators are computed
        over (``indicator_states.py``)."""
        info, actions = self.database.run(
            lambda c: (postgres.symbol_info(c, symbol), postgres.read_actions(c, [symbol])[symbol])
        )
        if info is None:
            return []
        adjustment = "split" if info.basis == "split" or info.actions_loaded else "raw"
        context = Adjusting(adjustment, actions, info.basis, info.actions_loaded, symbol)
        bars, _ = self._read(symbol, info.first, info.last, 10**9, True, None, context)
        return bars

    def _warmup(self, query: BarsQuery, first: date, span, pg_up: bool, held, context) -> list[DailyBar]:
        """The daily bars before ``first`` the overlays need: every one back to the
        symbol's first day for an EMA (it runs over the whole history, as the alerts check
        and a chart's EMA do), the last n - 1 for an SMA."""
        if first <= span[0]:
            return []
        if any(kind == "ema" for kind, _ in query.overlays):
            bars, _ = self._read(query.symbol, span[0], first - timedelta(days=1), 10**9, pg_up, held, context)
            return bars
        need = max(n for _, n in query.overlays) - 1
        if need <= 0:
            return []
        days = int(need * 1.5) + 10
        while True:
            since = max(span[0], first - timedelta(days=days))
            bars, _ = self._read(query.symbol, since, first - timedelta(days=1), 10**9, pg_up, held, context)
            if len(bars) >= need or since == span[0]:
                return bars[-need:]
            days *= 2

    def _lake_unavailable(self, exc: Exception) -> ApiError:
        return unavailable(
            "history_unavailable",
            "the full-history store (the lake) is unavailable; try again shortly",
            5,
            getattr(self.lake.store, "dependency", None),
        )

    def _lake_read(self, symbol: str, start: date | None = None, end: date | None = None):
        """(bars, their basis) from the lake, or None when it has no such symbol."""
        try:
            return self.lake.read_with_basis(symbol, start, end)
        except Exception as exc:  # noqa: BLE001 - any storage failure (unreachable, slow, unreadable) is a 503
            log.warning("lake read failed for %s: %s", symbol, exc)
            raise self._lake_unavailable(exc) from exc

    def _lake_actions(self, symbol: str):
        try:
            return self.lake.actions(symbol)
        except Exception as exc:  # noqa: BLE001 - as for the bars
            log.warning("lake actions read failed for %s: %s", symbol, exc)
            raise self._lake_unavailable(exc) from exc

    def _read(self, symbol, start, end, need, pg_up, held, context) -> tuple[list[DailyBar], str]:
        """Adjusted daily bars from ``start`` to ``end`` (at most ``need``), each tier's
        part adjusted from its own basis, and which tiers they came from."""
        window = self.window_start()
        rows: list[DailyBar] = []
        sources = []
        if start < window or not pg_up:
            upto = end if not pg_up else min(end, window - timedelta(days=1))
            bars, basis = held if held is not None else (self._lake_read(symbol, start, upto) or ([], "raw"))
            rows = context.adjust([b for b in bars if start <= b.day <= upto][:need], basis)
            sources.append("lake")
        if pg_up and end >= window and len(rows) < need:
            pg_from = max(start, window)
            try:
                recent = self.database.run(lambda c: postgres.read_bars(c, symbol, pg_from, end, need - len(rows)))
                recent = context.adjust(recent, context.basis)
                sources.append("postgres")
            except DatabaseUnavailable:
                # Read the recent part from the lake: what was read above stops at the seam.
                bars, basis = self._lake_read(symbol, pg_from, end) or ([], "raw")
                recent = context.adjust(bars[: need - len(rows)], basis)
                if "lake" not in sources:
                    sources.append("lake")
            rows.extend(recent)
        return rows, "+".join(sources) if sources else "postgres"


@dataclass
class Adjusting:
    """The adjustment asked for, and what is known to make it."""

    adjustment: str
    actions: list
    basis: str  # of the symbol's PostgreSQL rows (a lake object says its own)
    actions_loaded: bool
    symbol: str

    def adjust(self, bars: list[DailyBar], basis: str) -> list[DailyBar]:
        if (basis, self.adjustment) not in (("raw", "raw"), ("split", "split")) and not self.actions_loaded:
            # Split-adjusted bars stored before raw ones, whose splits and dividends are not
            # stored yet: only what is stored can be given.
            if basis == "split":
                why = (
                    f"{self.symbol}'s history is stored split-adjusted, without its splits and dividends yet: "
                    f"adjustment={self.adjustment} is available once it is migrated (python -m batch.migrate_raw); "
                    "adjustment=split answers now"
                )
            else:
                why = (
                    f"{self.symbol}'s history is stored as traded, without its splits and dividends: "
                    f"adjustment={self.adjustment} is available once they are loaded (python -m batch.ingest); "
                    "adjustment=raw answers now"
                )
            raise ApiError(409, "adjustment_unavailable", why)
        return adjust(bars, self.actions, self.adjustment, basis)


def overlay_values(
    overlays: tuple[tuple[str, int], ...], before: list[DailyBar], rows: list[DailyBar], sessions: int
) -> dict[str, list[float | None]]:
    """Each overlay at the last session of each N-day bar of ``rows``."""
    closes = [b.close for b in before] + [b.close for b in rows]
    offset = len(before)
    ends = [offset + min(i + sessions, len(rows)) - 1 for i in range(0, len(rows), sessions)]
    out = {}
    for overlay in overlays:
        series = (sma_series if overlay[0] == "sma" else ema_series)(closes, overlay[1])
        values = [series[i] for i in ends]
        out[overlay_name(overlay)] = [None if value is None else round(value, 6) for value in values]
    return out
