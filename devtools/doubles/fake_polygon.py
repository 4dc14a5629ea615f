"""A Polygon-compatible HTTP server for tests, benchmarks and ``make run``.

It speaks the endpoints this project uses, with Polygon's response shapes and
error bodies, counts every call, and can be told to misbehave:

- ``GET /v2/snapshot/locale/us/markets/stocks/tickers/{T}`` (one ticker; 404 if unknown)
- ``GET /v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B,...`` (many
  tickers; an unknown one is simply absent from ``tickers``, as Polygon does)
- ``GET /v2/aggs/ticker/{T}/range/1/day/{from}/{to}`` (``next_url`` paging)
- ``GET /v2/aggs/grouped/locale/us/market/stocks/{date}`` (every ticker's bar for a day,
  ``T`` the ticker; no results on a day without trading)
- ``GET /v3/reference/tickers/{T}`` (404 for an unknown ticker)
- ``GET /stocks/v1/splits`` and ``GET /stocks/v1/dividends`` (the vendor's current
  corporate actions, 2026-02): filters ``ticker``, ``ticker.any_of``, ``ticker.gt`` ...,
  ``execution_date`` / ``ex_dividend_date`` and their ``.gt/.gte/.lt/.lte``,
  ``adjustment_type`` / ``distribution_type``; ``limit`` 100 by default, at most 5,000;
  ``sort`` as ``column.asc|desc`` (splits default to ``execution_date.desc``, dividends to
  ``ticker.asc``, as the vendor's pages say); ``next_url`` paging. Each row carries the
  vendor's cumulative ``historical_adjustment_factor``, computed here from the fake's own
  raw bars (6 decimals). The deprecated ``/v3/reference/splits`` and
  ``/v3/reference/dividends`` answer 404, so nothing depends on them unnoticed.

Its bars are raw, as they traded; its splits and dividends are the corporate
actions. ``adjusted=true`` aggregates (the default, as the vendor's) divide each
price, and multiply each volume, by the ratios of the splits after the bar;
``adjusted=false`` answers the raw bars. ``add_split`` makes a split happen (the
raw prices from that day on fall by its ratio), ``add_dividend`` a dividend.

As the vendor's recorded answers have it: tickers are case-sensitive (``KIMpL`` is
a preferred share, ``/tickers/KIMPL`` another, unknown ticker); volumes are floats
and may be fractional; prices have up to 4 decimals; aggregates carry ``n``; a
``next_url`` is absolute, has ``from`` rewritten to epoch milliseconds and carries
only an opaque ``cursor``; a cleared snapshot (03:30 ET until the first trade)
has ``updated: 0`` and no ``lastTrade`` or ``lastQuote`` at all; a delayed plan's
snapshots say ``"status": "DELAYED"``; OTC tickers (``otc``) are left out of the
grouped-daily and many-ticker answers unless ``include_otc=true`` is asked for.

``split(symbol, day, ratio)`` adjusts a symbol's bars before ``day`` as Polygon's
``adjusted=true`` history changes after a split. A fault for a many-ticker or a
grouped request can be set under ``"GROUPED"`` (or ``"*"``).

Faults (per symbol or for all): an HTTP status with Polygon's body (401, 403,
404, 429, 5xx), a delay, or a malformed body; each for the next N calls or
until cleared. A many-ticker call takes the fault of the first of its tickers
that has one. Other processes steer it through ``/_fake/*`` endpoints.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse
from zoneinfo import ZoneInfo

from shared.bars import DailyBar

NEW_YORK = ZoneInfo("America/New_York")
SNAPSHOT_PREFIX = "/v2/snapshot/locale/us/markets/stocks/tickers/"
SNAPSHOT_MANY = "/v2/snapshot/locale/us/markets/stocks/tickers"
AGGS_PREFIX = "/v2/aggs/ticker/"
GROUPED_PREFIX = "/v2/aggs/grouped/locale/us/market/stocks/"
REFERENCE_PREFIX = "/v3/reference/tickers/"
SPLITS_PATH = "/stocks/v1/splits"
DIVIDENDS_PATH = "/stocks/v1/dividends"
ACTIONS_PAGE_DEFAULT, ACTIONS_PAGE_MAX = 100, 5000
# What each endpoint sorts by unless asked: its docs pages disagree, so callers ask.
ACTIONS_DEFAULT_SORT = {"splits": "execution_date.desc", "dividends": "ticker.asc"}
FREQUENCY = {"recurring": 4, "special": 0, "supplemental": 0, "irregular": 0, "unknown": 0}


@dataclass(frozen=True)
class Split:
    day: date
    split_from: float
    split_to: float
    adjustment_type: str = ""  # "" means: forward or reverse, as the ratio says

    @property
    def ratio(self) -> float:
        return self.split_to / self.split_from

    @property
    def kind(self) -> str:
        if self.adjustment_type:
            return self.adjustment_type
        return "forward_split" if self.split_to > self.split_from else "reverse_split"


@dataclass(frozen=True)
class Dividend:
    day: date  # the ex-dividend date
    amount: float
    distribution_type: str = "recurring"
    currency: str = "USD"


def _split(item) -> Split:
    return item if isinstance(item, Split) else Split(*item)


def _dividend(item) -> Dividend:
    return item if isinstance(item, Dividend) else Dividend(*item)


def _error_body(status: int) -> dict:
    rid = uuid.uuid4().hex
    if status == 401:
        return {"status": "ERROR", "request_id": rid, "error": "Unknown API Key"}
    if status == 403:
        return {
            "status": "NOT_AUTHORIZED",
            "request_id": rid,
            "message": "You are not entitled to this data. Please upgrade your plan at https://massive.com/pricing",
        }
    if status == 404:
        return {"status": "NOT_FOUND", "request_id": rid, "message": "Ticker not found."}
    if status == 429:
        return {
            "status": "ERROR",
            "request_id": rid,
            "error": "You've exceeded the maximum requests per minute, please wait or upgrade your "
            "subscription to continue. https://massive.com/pricing",
        }
    return {"status": "ERROR", "request_id": rid, "error": "Internal server error"}


def session_open_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 9, 30, tzinfo=NEW_YORK).timestamp() * 1e9)


def session_bar(symbol: str, prev: DailyBar, day: date) -> DailyBar:
    """Today's bar, continuing from the last stored one: a small deterministic move
    (the same for a symbol and a day in every process), so the live price, the
    chart's last bar and a rule such as ``price < sma(50)`` all speak of one market."""
    import random

    rng = random.Random(f"{symbol}:{day.isoformat()}")
    open_ = round(prev.close * (1 + rng.uniform(-0.01, 0.01)), 4)
    close = round(open_ * (1 + rng.uniform(-0.02, 0.02)), 4)
    high = round(max(open_, close) * (1 + rng.uniform(0, 0.01)), 4)
    low = round(min(open_, close) * (1 - rng.uniform(0, 0.01)), 4)
    return DailyBar(day, open_, high, low, close, round(prev.volume * rng.uniform(0.7, 1.3), 1))


def derive_snapshot(symbol: str, bars: list[DailyBar], now: datetime) -> dict:
    """A plausible snapshot at ``now`` that continues from the last stored bar.

    The previous session is the last bar stored; today's session moves a little
    from its close (``session_bar``); during 09:30-16:00 ET the price walks open
    -> extreme -> extreme -> close. From 03:30 ET until the open the snapshot is
    zero-filled, as Polygon's is, so clients must fall back to the previous close.
    """
    local = now.astimezone(NEW_YORK)
    session_day = local.date()
    while session_day.weekday() >= 5:
        session_day -= timedelta(days=1)
    prev = bars[-1]
    bar = session_bar(symbol, prev, session_day)
    open_at = datetime.combine(session_day, datetime.min.time(), NEW_YORK).replace(hour=9, minute=30)
    close_at = open_at.replace(hour=16, minute=0)
    cleared_at = open_at.replace(hour=3, minute=30)
    weekend = local.date() != session_day
    now_ns = int(now.timestamp() * 1e9)
    prev_day = {
        "o": prev.open,
        "h": prev.high,
        "l": prev.low,
        "c": prev.close,
        "v": float(prev.volume),
        "vw": round((prev.high + prev.low + prev.close) / 3, 4),
    }
    snapshot = {"ticker": symbol, "updated": now_ns, "prevDay": prev_day, "fmv": 0}

    if not weekend and cleared_at <= local < open_at:
        # As reported bodies have it: day and min zero-filled, updated 0, and no
        # lastTrade or lastQuote at all.
        zero_bar = {"o": 0, "h": 0, "l": 0, "c": 0, "v": 0, "vw": 0}
        snapshot.update(day=zero_bar, min={**zero_bar, "av": 0, "t": 0, "n": 0}, todaysChange=0, todaysChangePerc=0)
        snapshot["updated"] = 0
        return snapshot

    if weekend or local >= close_at:
        fraction, at = 1.0, close_at
    elif local < cleared_at:
        # Before the clear, the snapshot still shows the previous session, closed.
        return derive_snapshot(
            symbol,
            bars,
            datetime.combine(session_day - timedelta(days=1), datetime.min.time(), NEW_YORK).replace(hour=17),
        )
    else:
        fraction = (local - open_at) / (close_at - open_at)
        at = local
    first, second = (bar.high, bar.low) if bar.close < bar.open else (bar.low, bar.high)
    path = [(0.0, bar.open), (1 / 3, first), (2 / 3, second), (1.0, bar.close)]
    seen = [p for t, p in path if t <= fraction]
    for (t0, p0), (t1, p1) in zip(path, path[1:], strict=False):
        if t0 <= fraction <= t1:
            price = round(p0 + (p1 - p0) * (fraction - t0) / (t1 - t0), 4)
            break
    seen.append(price)
    minute_start = at.replace(second=0, microsecond=0)
    volume = round(bar.volume * fraction, 1)
    snapshot.update(
        day={
            "o": bar.open,
            "h": max(seen),
            "l": min(seen),
            "c": price,
            "v": float(volume),
            "vw": round(sum(seen) / len(seen), 4),
        },
        min={
            "av": float(volume),
            "o": price,
            "h": price,
            "l": price,
            "c": price,
            "v": 100.0,
            "vw": price,
            "t": int(minute_start.timestamp() * 1000),
            "n": 1,
        },
        lastTrade={"c": [14, 41], "i": "1", "p": price, "s": 100, "t": int(at.timestamp() * 1e9), "x": 4},
        lastQuote={
            "P": round(price + 0.01, 4),
            "S": 1,
            "p": round(price - 0.01, 4),
            "s": 1,
            "t": int(at.timestamp() * 1e9),
        },
        todaysChange=round(price - prev.close, 4),
        todaysChangePerc=round((price - prev.close) / prev.close * 100, 4),
    )
    return snapshot


def _split_by(b: DailyBar, ratio: float) -> DailyBar:
    """A bar in shares ``ratio`` times as many: prices divided, volume multiplied (4 decimals, as the vendor's)."""
    return DailyBar(
        b.day,
        round(b.open / ratio, 4),
        round(b.high / ratio, 4),
        round(b.low / ratio, 4),
        round(b.close / ratio, 4),
        round(b.volume * ratio, 4),
    )


class FakePolygon:
    """The server's state: data, faults and call counts. Thread-safe."""

    def __init__(
        self,
        bars: dict[str, list[DailyBar]] | None = None,
        api_key: str | None = None,
        clock=lambda: datetime.now(UTC),
        page_size: int = 5000,
        otc: set[str] | None = None,
        delayed: bool = False,
        splits: dict[str, list] | None = None,
        dividends: dict[str, list] | None = None,
    ):
        # Case-sensitive, as the vendor's tickers are.
        self.bars = {k: sorted(v, key=lambda b: b.day) for k, v in (bars or {}).items()}
        # Tickers traded over the counter: absent from grouped and many-ticker answers
        # unless include_otc=true.
        self.otc = set(otc or ())
        # A delayed plan: snapshot answers say "status": "DELAYED".
        self.delayed = delayed
        # Tickers whose aggregates answer a next_url that leads back to the same page.
        self.looping_next_url: set[str] = set()
        # symbol -> [Split] and [Dividend]; tuples are taken as their fields in order:
        # (execution date, split_from, split_to[, adjustment_type]) and
        # (ex-dividend date, cash amount[, distribution_type[, currency]]).
        self.splits = {k: sorted(map(_split, v), key=lambda x: x.day) for k, v in (splits or {}).items()}
        self.dividends = {k: sorted(map(_dividend, v), key=lambda x: x.day) for k, v in (dividends or {}).items()}
        # (kind, symbol, day) -> the historical_adjustment_factor to answer instead of the right one
        self.misreported: dict[tuple[str, str, date], float] = {}
        self.snapshots: dict[str, dict] = {}
        self.api_key = api_key
        self.clock = clock
        self.page_size = page_size
        self._lock = threading.Lock()
        self._faults: dict[str, dict] = {}
        self.calls: dict[str, int] = {}
        # When a list: the tickers of every snapshot request, in order (make bench
        # checks from it, independently of the service, how old each answer is).
        self.ticker_log: list[list[str]] | None = None
        # When true, a ticker without data is known all the same (load benchmarks).
        self.any_ticker = False
        self.delay_s = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- steering

    def set_snapshot(self, symbol: str, ticker: dict) -> None:
        with self._lock:
            self.snapshots[symbol] = ticker

    def set_fault(
        self,
        symbol: str | None = None,
        status: int | None = None,
        delay_s: float = 0.0,
        garbage: bool = False,
        times: int | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Misbehave for ``symbol`` (or every symbol with None) for the next ``times`` calls."""
        with self._lock:
            self._faults[symbol or "*"] = {
                "status": status,
                "delay_s": delay_s,
                "garbage": garbage,
                "times": times,
                "retry_after": retry_after,
            }

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.calls.clear()
            self.snapshots.clear()
            self.delay_s = 0.0

    def reset_calls(self) -> None:
        """Zero the call counts, keeping data, snapshots and faults."""
        with self._lock:
            self.calls.clear()

    def count(self, symbol: str | None = None, kind: str = "snapshot") -> int:
        """Snapshot requests (single- and many-ticker), or those that asked for ``symbol``;
        for other kinds, requests of that kind (for ``symbol``)."""
        with self._lock:
            if kind == "snapshot":
                if symbol is None:
                    return sum(v for k, v in self.calls.items() if k.startswith("snapshot:")) + self.calls.get(
                        "snapshots", 0
                    )
                return self.calls.get(f"asked:{symbol}", 0)
            if symbol is None:
                return sum(v for k, v in self.calls.items() if k.startswith(kind + ":"))
            return self.calls.get(f"{kind}:{symbol}", 0)

    def count_many(self) -> int:
        """Many-ticker snapshot requests."""
        with self._lock:
            return self.calls.get("snapshots", 0)

    def _log(self, tickers: list[str]) -> None:
        if self.ticker_log is not None:
            with self._lock:
                self.ticker_log.append(list(tickers))

    def _count(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self.calls[key] = self.calls.get(key, 0) + 1

    def _take_first_fault(self, tickers: list[str]) -> dict | None:
        with self._lock:
            keys = [t for t in tickers if t in self._faults] + ["*"]
        for key in keys:
            fault = self._take_fault(key) if key != "*" else self._take_fault("")
            if fault is not None:
                return fault
        return None

    def _take_fault(self, symbol: str) -> dict | None:
        with self._lock:
            for key in (symbol, "*"):
                fault = self._faults.get(key)
                if fault is None:
                    continue
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] < 0:
                        del self._faults[key]
                        continue
                return fault
            return None

    # ----- serving

    def start(self, port: int = 0, host: str = "127.0.0.1") -> FakePolygon:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-polygon", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def handle(self, path: str, query: dict[str, str], headers) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/_fake/"):
            return self._control(path, query)
        tickers: list[str] = []
        if path.rstrip("/") == SNAPSHOT_MANY:
            kind, symbol = "snapshots", ""
            tickers = [t for t in query.get("tickers", "").split(",") if t]  # case-sensitive, as Polygon's
            self._count("snapshots", *(f"asked:{t}" for t in tickers))
            self._log(tickers)
        elif path.startswith(SNAPSHOT_PREFIX):
            kind, symbol = "snapshot", path[len(SNAPSHOT_PREFIX) :]
            self._count(f"snapshot:{symbol}", f"asked:{symbol}")
            self._log([symbol])
        elif path.startswith(AGGS_PREFIX):
            kind, symbol = "aggs", path[len(AGGS_PREFIX) :].split("/")[0]
            self._count(f"aggs:{symbol}")
        elif path.startswith(GROUPED_PREFIX):
            kind, symbol = "grouped", "GROUPED"
            self._count(f"grouped:{path[len(GROUPED_PREFIX) :]}")
        elif path.startswith(REFERENCE_PREFIX):
            kind, symbol = "reference", path[len(REFERENCE_PREFIX) :]
            self._count(f"reference:{symbol}")
        elif path in (SPLITS_PATH, DIVIDENDS_PATH):
            kind = "splits" if path == SPLITS_PATH else "dividends"
            symbol = query.get("ticker", "ACTIONS")
            self._count(f"{kind}:{query.get('ticker') or query.get('execution_date') or query.get('ex_dividend_date')}")
        else:
            return _json(404, {"status": "NOT_FOUND", "request_id": uuid.uuid4().hex, "message": "Not found"})
        if self.api_key is not None:
            auth = headers.get("Authorization", "")
            given = auth[len("Bearer ") :] if auth.startswith("Bearer ") else query.get("apiKey", "")
            if given != self.api_key:
                return _json(401, _error_body(401))
        delay = self.delay_s
        fault = self._take_fault(symbol) if kind != "snapshots" else self._take_first_fault(tickers)
        if fault is not None:
            delay += fault["delay_s"]
        if delay:
            time.sleep(delay)
        if fault is not None:
            if fault["garbage"]:
                return 200, {"Content-Type": "application/json"}, b'{"status": "OK", "ticker": {"lastTr'
            if fault["status"]:
                extra = {"Retry-After": str(fault["retry_after"])} if fault["retry_after"] is not None else {}
                status, head, body = _json(fault["status"], _error_body(fault["status"]))
                return status, {**head, **extra}, body
        if kind == "snapshot":
            return self._snapshot(symbol)
        with_otc = query.get("include_otc") == "true"
        if kind == "snapshots":
            return self._snapshots([t for t in tickers if with_otc or t not in self.otc])
        if kind == "grouped":
            return self._grouped(path[len(GROUPED_PREFIX) :], with_otc, query.get("adjusted", "true") != "false")
        if kind in ("splits", "dividends"):
            return self._actions(kind, path, query)
        if kind == "reference":
            if symbol not in self.bars and symbol not in self.snapshots:
                return _json(404, _error_body(404))
            return _json(
                200,
                {
                    "status": "OK",
                    "request_id": uuid.uuid4().hex,
                    "results": {"ticker": symbol, "market": "stocks", "active": True},
                },
            )
        return self._aggs(path, query, symbol)

    def _actions(self, kind: str, path: str, query: dict[str, str]):
        query = {**query, **(_read_cursor(query["cursor"]) if "cursor" in query else {})}
        try:
            limit = int(query.get("limit", ACTIONS_PAGE_DEFAULT))
        except ValueError:
            limit = -1
        if not 1 <= limit <= ACTIONS_PAGE_MAX:
            body = {
                "status": "ERROR",
                "request_id": uuid.uuid4().hex,
                "error": f"limit must be 1 to {ACTIONS_PAGE_MAX}",
            }
            return _json(400, body)
        with self._lock:
            rows = self._split_rows() if kind == "splits" else self._dividend_rows()
        day_field = "execution_date" if kind == "splits" else "ex_dividend_date"
        type_field = "adjustment_type" if kind == "splits" else "distribution_type"
        rows = [r for r in rows if _matches(r, query, ("ticker", day_field, type_field))]
        for column, direction in reversed(
            [part.rsplit(".", 1) for part in query.get("sort", ACTIONS_DEFAULT_SORT[kind]).split(",")]
        ):
            rows.sort(key=lambda r, c=column: (r.get(c) is None, r.get(c)), reverse=direction == "desc")
        offset = int(query.get("offset", 0))
        body = {"results": rows[offset : offset + limit], "status": "OK", "request_id": uuid.uuid4().hex}
        if offset + limit < len(rows):
            kept = {k: v for k, v in query.items() if k not in ("cursor", "offset", "apiKey")}
            body["next_url"] = f"{self.url}{path}?cursor={_make_cursor({**kept, 'offset': offset + limit})}"
        return _json(200, body)

    def _split_rows(self) -> list[dict]:
        rows = []
        for symbol, splits in self.splits.items():
            for split in splits:
                later = [x for x in splits if x.day >= split.day]
                factor = 1.0
                for x in later:
                    factor /= x.ratio
                rows.append(
                    {
                        "id": _vendor_id(f"split:{symbol}:{split.day}:{split.split_from}:{split.split_to}"),
                        "ticker": symbol,
                        "execution_date": split.day.isoformat(),
                        "split_from": _num(split.split_from),
                        "split_to": _num(split.split_to),
                        "adjustment_type": split.kind,
                        "historical_adjustment_factor": self.misreported.get(
                            ("split", symbol, split.day), round(factor, 6)
                        ),
                    }
                )
        return rows

    def _ex_date_factors(self, symbol: str) -> dict[date, float]:
        """1 - the day's USD cash / the raw close before the ex-date (in the ex-date's shares)."""
        bars, splits = self.bars.get(symbol, []), self.splits.get(symbol, [])
        cash: dict[date, float] = {}
        for d in self.dividends.get(symbol, []):
            if d.currency == "USD":
                cash[d.day] = cash.get(d.day, 0.0) + d.amount
        out = {}
        for day, paid in cash.items():
            before = [b for b in bars if b.day < day]
            if not before:
                continue
            close = before[-1].close
            for x in splits:
                if before[-1].day < x.day <= day:
                    close /= x.ratio
            out[day] = 1 - paid / close
        return out

    def _dividend_rows(self) -> list[dict]:
        rows = []
        for symbol, dividends in self.dividends.items():
            factors, splits = self._ex_date_factors(symbol), self.splits.get(symbol, [])
            for d in dividends:
                factor = None
                if d.day in factors:
                    factor = 1.0
                    for day, value in factors.items():
                        if day >= d.day:
                            factor *= value
                later_ratio = 1.0
                for x in splits:
                    if x.day > d.day:
                        later_ratio *= x.ratio
                rows.append(
                    {
                        "id": _vendor_id(f"dividend:{symbol}:{d.day}:{d.amount}:{d.distribution_type}"),
                        "ticker": symbol,
                        "cash_amount": d.amount,
                        "currency": d.currency,
                        "declaration_date": (d.day - timedelta(days=30)).isoformat(),
                        "ex_dividend_date": d.day.isoformat(),
                        "record_date": (d.day + timedelta(days=1)).isoformat(),
                        "pay_date": (d.day + timedelta(days=14)).isoformat(),
                        "frequency": FREQUENCY.get(d.distribution_type, 0),
                        "distribution_type": d.distribution_type,
                        "historical_adjustment_factor": self.misreported.get(
                            ("dividend", symbol, d.day), None if factor is None else round(factor, 6)
                        ),
                        "split_adjusted_cash_amount": round(d.amount / later_ratio, 6),
                    }
                )
        return rows

    def _grouped(self, raw_day: str, with_otc: bool, adjusted: bool):
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            return _json(400, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "Could not parse date"})
        with self._lock:
            found = [
                (symbol, b)
                for symbol in list(self.bars)
                if with_otc or symbol not in self.otc
                for b in (self.adjusted_bars(symbol) if adjusted else self.bars[symbol])
                if b.day == day
            ]
        body = {
            "adjusted": adjusted,
            "queryCount": len(found),
            "resultsCount": len(found),
            "status": "OK",
            "request_id": uuid.uuid4().hex,
        }
        if found:
            body["results"] = [{"T": symbol, **_aggregate(b)} for symbol, b in found]
        return _json(200, body)

    def add_split(self, symbol: str, day: date, split_from: float, split_to: float, adjustment_type: str = "") -> None:
        """A ``split_to``-for-``split_from`` split executed on ``day``: from that day the
        stock trades at ``split_from / split_to`` of the price (its raw bars from then on
        are scaled so), with as many times more shares traded."""
        ratio = split_to / split_from
        with self._lock:
            self.bars[symbol] = [b if b.day < day else _split_by(b, ratio) for b in self.bars[symbol]]
            self.splits.setdefault(symbol, []).append(Split(day, split_from, split_to, adjustment_type))
            self.splits[symbol].sort(key=lambda x: x.day)

    def add_dividend(
        self, symbol: str, ex_day: date, amount: float, distribution_type: str = "recurring", currency: str = "USD"
    ) -> None:
        with self._lock:
            self.dividends.setdefault(symbol, []).append(Dividend(ex_day, amount, distribution_type, currency))
            self.dividends[symbol].sort(key=lambda x: x.day)

    def misreport_factor(self, kind: str, symbol: str, day: date, factor: float) -> None:
        """Answer ``factor`` as the historical_adjustment_factor of ``symbol``'s ``kind`` on
        ``day``: a vendor error, or what a vendor whose list misses an event would say."""
        with self._lock:
            self.misreported[(kind, symbol, day)] = factor

    def adjusted_bars(self, symbol: str) -> list[DailyBar]:
        """As the vendor's adjusted=true: split-adjusted, not for dividends."""
        splits = self.splits.get(symbol, [])
        out = []
        for b in self.bars.get(symbol, []):
            factor = 1.0
            for split in splits:
                if split.day > b.day:
                    factor *= split.ratio
            out.append(b if factor == 1.0 else _split_by(b, factor))
        return out

    def add_bars(self, symbol: str, bars: list[DailyBar]) -> None:
        with self._lock:
            by_day = {b.day: b for b in self.bars.get(symbol, [])}
            by_day.update((b.day, b) for b in bars)
            self.bars[symbol] = [by_day[d] for d in sorted(by_day)]

    def _ticker(self, symbol: str) -> dict | None:
        with self._lock:
            ticker = self.snapshots.get(symbol)
        if ticker is None:
            bars = self.bars.get(symbol)
            if not bars:
                if not self.any_ticker:
                    return None
                # Load benchmarks ask for a new symbol every request: any ticker trades at 100.
                return {
                    "ticker": symbol,
                    "updated": 1,
                    "prevDay": {"c": 99.0},
                    "lastTrade": {"p": 100.0, "t": 1_700_000_000_000_000_000},
                }
            ticker = derive_snapshot(symbol, bars, self.clock())
        return ticker

    @property
    def _status(self) -> str:
        return "DELAYED" if self.delayed else "OK"

    def _snapshots(self, tickers: list[str]):
        found = [t for t in (self._ticker(symbol) for symbol in dict.fromkeys(tickers)) if t is not None]
        return _json(200, {"status": self._status, "count": len(found), "tickers": found})

    def _snapshot(self, symbol: str):
        ticker = self._ticker(symbol)
        if ticker is None:
            return _json(404, _error_body(404))
        return _json(200, {"status": self._status, "request_id": uuid.uuid4().hex, "ticker": ticker})

    def _aggs(self, path: str, query: dict[str, str], symbol: str):
        parts = path[len(AGGS_PREFIX) :].split("/")
        # {T}/range/{mult}/{span}/{from}/{to}
        if len(parts) != 6 or parts[1] != "range" or parts[2] != "1" or parts[3] != "day":
            return _json(
                400, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "this fake serves only range/1/day"}
            )
        try:
            # A cursor holds the window the first page asked for and the position in it.
            query = {**query, **(_read_cursor(query["cursor"]) if "cursor" in query else {})}
            start, end = _as_date(query.get("window_from", parts[4])), _as_date(parts[5])
        except ValueError:
            return _json(400, {"status": "ERROR", "request_id": uuid.uuid4().hex, "error": "Could not parse dates"})
        limit = min(int(query.get("limit", 5000)), 50000, self.page_size)
        offset = int(query.get("offset", 0))
        adjusted = query.get("adjusted", "true") != "false"
        with self._lock:
            source = self.adjusted_bars(symbol) if adjusted else self.bars.get(symbol, [])
        rows = [b for b in source if start <= b.day <= end]
        if query.get("sort") == "desc":
            rows.reverse()
        page = rows[offset : offset + limit]
        body = {
            "ticker": symbol,
            "queryCount": len(page),
            "resultsCount": len(page),
            "adjusted": adjusted,
            "status": "OK",
            "request_id": uuid.uuid4().hex,
        }
        if page:
            body["results"] = [_aggregate(b) for b in page]
        if offset + limit < len(rows):
            # As the vendor's: absolute, `from` as epoch milliseconds, and nothing in the
            # query but an opaque cursor (which holds the other parameters and where to go on).
            kept = {k: v for k, v in query.items() if k in ("adjusted", "sort", "limit")}
            if "adjusted" not in kept:
                kept["adjusted"] = "true"
            following = offset if symbol in self.looping_next_url else offset + limit
            first = rows[offset + limit] if symbol not in self.looping_next_url else rows[offset]
            from_ms = int(datetime.combine(first.day, datetime.min.time(), NEW_YORK).timestamp() * 1000)
            rest = "/".join([symbol, "range", "1", "day", str(from_ms), parts[5]])
            state = {**kept, "offset": following, "window_from": query.get("window_from", parts[4])}
            body["next_url"] = f"{self.url}{AGGS_PREFIX}{rest}?cursor={_make_cursor(state)}"
        return _json(200, body)

    def _control(self, path: str, query: dict[str, str]):
        if path == "/_fake/calls":
            with self._lock:
                return _json(200, {"calls": dict(self.calls)})
        if path == "/_fake/reset":
            self.reset()
            return _json(200, {"ok": True})
        if path == "/_fake/fault":
            status = int(query["status"]) if query.get("status") else None
            times = int(query["times"]) if query.get("times") else None
            self.set_fault(
                query.get("symbol"),
                status=status,
                delay_s=float(query.get("delay_s", 0)),
                garbage=query.get("garbage") == "1",
                times=times,
            )
            return _json(200, {"ok": True})
        if path == "/_fake/delay":
            self.delay_s = float(query.get("s", 0))
            return _json(200, {"ok": True})
        return _json(404, {"error": "unknown control"})


def _vendor_id(key: str) -> str:
    """A stable id in the vendor's style (the current endpoints' ids are 32 upper-case hex)."""
    return "E" + uuid.uuid5(uuid.NAMESPACE_OID, key).hex.upper()[:31]


def _num(value: float) -> float | int:
    """A ratio as the vendor writes it: 2 rather than 2.0."""
    return int(value) if float(value).is_integer() else value


_RANGE = ("gt", "gte", "lt", "lte")


def _matches(row: dict, query: dict[str, str], fields: tuple[str, ...]) -> bool:
    """The vendor's filters: ``field``, ``field.any_of`` (comma-separated) and the ranges."""
    for name in fields:
        value = row.get(name)
        if name in query and value != query[name]:
            return False
        if f"{name}.any_of" in query and value not in query[f"{name}.any_of"].split(","):
            return False
        for op in _RANGE:
            bound = query.get(f"{name}.{op}")
            if bound is None:
                continue
            if value is None:
                return False
            if (
                (op == "gt" and not value > bound)
                or (op == "gte" and not value >= bound)
                or (op == "lt" and not value < bound)
                or (op == "lte" and not value <= bound)
            ):
                return False
    return True


def _make_cursor(fields: dict) -> str:
    import base64

    return base64.urlsafe_b64encode(urlencode(fields).encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> dict:
    import base64

    return {k: v[-1] for k, v in parse_qs(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()).items()}


def _aggregate(b: DailyBar) -> dict:
    """One bar as Polygon's aggregates and grouped-daily answers spell it (volumes are floats)."""
    return {
        "v": float(b.volume),
        "vw": round((b.high + b.low + b.close) / 3, 4),
        "o": b.open,
        "c": b.close,
        "h": b.high,
        "l": b.low,
        "t": int(datetime.combine(b.day, datetime.min.time(), NEW_YORK).timestamp() * 1000),
        "n": max(1, int(b.volume // 100)),
    }


def _as_date(text: str) -> date:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, NEW_YORK).date()
    return date.fromisoformat(text)


def _json(status: int, body: dict) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: FakePolygon
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's
    # delayed ACK adds 40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 - the stdlib's name
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        status, headers, body = self.fake.handle(url.path, query, self.headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815 - the stdlib's name

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Polygon API on loopback.")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--api-key", default=None, help="require this key (default: accept any)")
    args = parser.parse_args(argv)
    from devtools.local.sample_data import SAMPLE_DIVIDENDS, SAMPLE_SPLITS, sample_bars

    fake = FakePolygon(sample_bars(), api_key=args.api_key, splits=SAMPLE_SPLITS, dividends=SAMPLE_DIVIDENDS)
    fake.start(args.port)
    print(f"fake Polygon serving {', '.join(sorted(fake.bars))} at {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
