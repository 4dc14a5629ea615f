"""Historical bars across the two tiers, with pagination that never splits a bar.

Routing by the recent window ``[window_start, as_of]``:
- a range inside the window reads PostgreSQL;
- a range wholly before it reads the lake;
- a range across it reads the lake before ``window_start`` and PostgreSQL
  from ``window_start`` on, so the seam has no missing and no doubled day;
- PostgreSQL unreachable: everything from the lake, which holds all of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared import postgres
from shared.bars import DailyBar, aggregate, parse_interval
from shared.config import Settings
from shared.errors import bad_request, not_found, unavailable
from shared.postgres import DatabaseUnavailable
from shared.symbols import parse_symbol

from .lake import Lake

log = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
MAX_LIMIT = 10000
DEFAULT_LIMIT = 1000
FORMATS = ("json", "csv", "parquet")


def market_today() -> date:
    return datetime.now(NEW_YORK).date()


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

    def binding(self) -> str:
        """What a cursor is tied to: the same symbol, interval and range as asked."""
        raw = f"{self.symbol}|{self.interval}|{self.start}|{self.end}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _parse_date(params: dict, name: str) -> date | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise bad_request("invalid_date", f"'{name}' must be an ISO date like 2024-12-31, got {raw!r}") from None


def parse_query(params: dict) -> BarsQuery:
    symbol = parse_symbol(params.get("symbol"))
    interval, sessions = parse_interval(params.get("interval"))
    start, end = _parse_date(params, "start"), _parse_date(params, "end")
    if start and end and start > end:
        raise bad_request("invalid_range", f"start {start} is after end {end}")
    raw_limit = params.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        raise bad_request("invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request("invalid_limit", f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    fmt = (params.get("format") or "json").lower()
    if fmt not in FORMATS:
        raise bad_request("invalid_format", f"format must be one of {', '.join(FORMATS)}")
    return BarsQuery(symbol, interval, sessions, start, end, limit, params.get("cursor") or None, fmt)


@dataclass
class BarsPage:
    symbol: str
    interval: str
    start: date
    end: date
    source: str
    bars: list[dict]
    next_cursor: str | None

    def to_json(self) -> dict:
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "source": self.source,
            "bars": self.bars,
            "next_cursor": self.next_cursor,
        }


class CursorCodec:
    """Opaque, signed cursors: ``base64(json).signature``."""

    def __init__(self, secret: str):
        self._key = secret.encode()

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest()[:12]).decode()

    def encode(self, state: dict) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload.encode())}"

    def decode(self, cursor: str) -> dict:
        invalid = bad_request("invalid_cursor", "the cursor is not one this service issued, or it was altered")
        payload, _, signature = cursor.partition(".")
        if not payload or not hmac.compare_digest(signature, self._sign(payload.encode())):
            raise invalid
        try:
            return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except ValueError:
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
        lake_bars: list[DailyBar] | None = None
        pg_up = True
        try:
            span = self.database.run(lambda c: postgres.symbol_span(c, query.symbol))
        except DatabaseUnavailable:
            pg_up = False
            lake_bars = self._lake_read(query.symbol)
            span = (lake_bars[0].day, lake_bars[-1].day) if lake_bars else None
        if span is None:
            raise not_found("unknown_symbol", f"no history is stored for {query.symbol}")

        end = query.end or span[1]
        start = query.start or years_before(end, 1) + timedelta(days=1)
        if start > end:
            raise bad_request("invalid_range", f"start {start} is after end {end} (the latest bar)")
        fetch_from = start
        if query.cursor:
            state = self.cursors.decode(query.cursor)
            if state.get("b") != query.binding():
                raise bad_request(
                    "cursor_mismatch",
                    "the cursor belongs to another query: repeat the same symbol, interval, start and end",
                )
            fetch_from = date.fromisoformat(state["a"]) + timedelta(days=1)
            # The end as resolved for the first page, so bars ingested meanwhile
            # cannot make the pages differ from the answer the first page began.
            end = date.fromisoformat(state["e"])

        # One row more than the page needs tells whether another page exists.
        need = query.limit * query.sessions + 1
        rows, source = self._read(query.symbol, fetch_from, end, need, pg_up, lake_bars)
        more = len(rows) >= need
        rows = rows[: query.limit * query.sessions]
        bars = aggregate(rows, query.sessions)
        next_cursor = None
        if more and bars:
            last = rows[-1].day
            next_cursor = self.cursors.encode({"a": last.isoformat(), "e": end.isoformat(), "b": query.binding()})
        return BarsPage(query.symbol, query.interval, start, end, source, bars, next_cursor)

    def _lake_read(self, symbol: str, start: date | None = None, end: date | None = None) -> list[DailyBar] | None:
        try:
            return self.lake.read(symbol, start, end)
        except Exception as exc:  # noqa: BLE001 - any storage failure is a 503
            log.warning("lake read failed for %s: %s", symbol, exc)
            raise unavailable("history_unavailable", "historical data storage is unavailable", 5) from exc

    def _read(self, symbol, start, end, need, pg_up, lake_bars) -> tuple[list[DailyBar], str]:
        window = self.window_start()
        rows: list[DailyBar] = []
        sources = []
        if start < window or not pg_up:
            upto = end if not pg_up else min(end, window - timedelta(days=1))
            if lake_bars is None:
                lake_bars = self._lake_read(symbol, start, upto) or []
            rows = [b for b in lake_bars if start <= b.day <= upto][:need]
            sources.append("lake")
        if pg_up and end >= window and len(rows) < need:
            pg_from = max(start, window)
            try:
                recent = self.database.run(lambda c: postgres.read_bars(c, symbol, pg_from, end, need - len(rows)))
                sources.append("postgres")
            except DatabaseUnavailable:
                # Read the recent part from the lake: what was read above stops at the seam.
                recent = (self._lake_read(symbol, pg_from, end) or [])[: need - len(rows)]
                if "lake" not in sources:
                    sources.append("lake")
            rows.extend(recent)
        return rows, "+".join(sources) if sources else "postgres"
