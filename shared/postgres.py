"""The recent tier: daily bars for the last ``RECENT_YEARS`` years in PostgreSQL (pg8000).

The reading side, used by the backtest API and the alerts check; writes are the
batch side's (``batch/postgres_writer.py``).
"""

from __future__ import annotations

import logging
import threading
from datetime import date
from typing import Any, NamedTuple
from urllib.parse import parse_qs, unquote, urlparse

import orjson

from shared.bars import DailyBar, make_bar

log = logging.getLogger(__name__)

# Each step runs once, in order; the version table makes re-running a no-op.
MIGRATIONS = [
    # The primary key is the range-scan index: (symbol, day) keeps one symbol's
    # days adjacent, and INCLUDE lets a range be answered by an index-only scan.
    """
    CREATE TABLE daily_bars (
        symbol text NOT NULL,
        day date NOT NULL,
        open double precision NOT NULL,
        high double precision NOT NULL,
        low double precision NOT NULL,
        close double precision NOT NULL,
        volume bigint NOT NULL,
        CONSTRAINT daily_bars_pkey PRIMARY KEY (symbol, day) INCLUDE (open, high, low, close, volume)
    )
    """,
    # Every symbol ever ingested, with the span of its full history (both tiers):
    # tells an unknown symbol (404) from an empty range (200) in one lookup.
    """
    CREATE TABLE symbols (
        symbol text PRIMARY KEY,
        first_day date NOT NULL,
        last_day date NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # Ingestion checkpoints, so an interrupted run resumes where it stopped.
    """
    CREATE TABLE ingest_progress (
        run_key text NOT NULL,
        symbol text NOT NULL,
        finished_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_key, symbol)
    )
    """,
    # The vendor's volumes are floats and can be fractional (25933.6; split-adjusted
    # ones often are): bigint cut them. Every whole number converts exactly.
    "ALTER TABLE daily_bars ALTER COLUMN volume TYPE double precision",
    # Splits and dividends, every one ever (small: kept whole, never pruned). Bars are
    # stored raw and adjusted on read by these (shared.adjustment).
    """
    CREATE TABLE corporate_actions (
        symbol text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('split', 'dividend')),
        day date NOT NULL,
        split_from double precision,
        split_to double precision,
        amount double precision,
        dividend_type text,
        currency text,
        prev_close double precision,
        prev_day date,
        ref text NOT NULL,
        PRIMARY KEY (symbol, kind, day, ref)
    )
    """,
    # What a symbol's rows are: "raw" (as traded), or "split" (split-adjusted as the
    # vendor gave them, stored before this) until migrated; and whether its actions are
    # stored. Every symbol stored until now is the latter, without actions.
    """
    ALTER TABLE symbols
        ADD COLUMN basis text NOT NULL DEFAULT 'split' CHECK (basis IN ('raw', 'split')),
        ADD COLUMN actions_loaded boolean NOT NULL DEFAULT false
    """,
    # A split's kind as the vendor's current endpoint names it (forward_split,
    # reverse_split, stock_dividend); null for one stored from the deprecated endpoint.
    "ALTER TABLE corporate_actions ADD COLUMN adjustment_type text",
    # Each symbol's indicators as of its last bar (shared.indicators.IndicatorState),
    # kept by the daily update: what a check reads, one row per symbol, instead of the
    # whole history. Arrays are packed doubles; bars JSON.
    """
    CREATE TABLE indicator_states (
        symbol text PRIMARY KEY,
        day date NOT NULL,
        bar_count integer NOT NULL,
        closes bytea NOT NULL,
        bars text NOT NULL,
        ema bytea NOT NULL,
        gain bytea NOT NULL,
        loss bytea NOT NULL,
        splits text NOT NULL,
        computed_at timestamptz NOT NULL DEFAULT now()
    )
    """,
]


def connect(url: str, timeout_s: float):
    import pg8000.native

    parts = urlparse(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"DATABASE_URL must start with postgresql://, got {parts.scheme}://")
    where: dict = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 5432}
    socket_dir = parse_qs(parts.query).get("host", [""])[0]
    if socket_dir.startswith("/"):
        # libpq's form for a Unix socket: postgresql://user@/db?host=/run/postgresql
        where = {"unix_sock": f"{socket_dir}/.s.PGSQL.{parts.port or 5432}"}
    return pg8000.native.Connection(
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password else None,
        **where,
        database=(parts.path or "/postgres").lstrip("/") or "postgres",
        timeout=timeout_s,
        application_name="market-data",
    )


def migrate(conn) -> int:
    """Bring the schema up to date; safe to run from many processes at once."""
    conn.run("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
    conn.run("BEGIN")
    try:
        # One migrator at a time: the others wait here, then find nothing to do.
        conn.run("LOCK TABLE schema_version IN EXCLUSIVE MODE")
        rows = conn.run("SELECT max(version) FROM schema_version")
        current = rows[0][0] or 0
        for version, statement in enumerate(MIGRATIONS, start=1):
            if version > current:
                conn.run(statement)
                conn.run("INSERT INTO schema_version (version) VALUES (:v)", v=version)
        conn.run("COMMIT")
    except Exception:
        conn.run("ROLLBACK")
        raise
    return len(MIGRATIONS)


# pg8000 parses each date cell in Python, which makes a 5-year fetch cost ~10 ms;
# PostgreSQL can hand over the same rows as one JSON text that a C parser reads
# in a fraction of that (see make bench).
_ROWS_AS_JSON = "json_agg(json_build_array(day, open, high, low, close, volume) ORDER BY day)::text"


def _bars_from_json(text: str | None) -> list[DailyBar]:
    if not text:
        return []
    # JSON writes a whole double without its ".0": each number back to a float, as the
    # lake's are (one type per field, whichever tier answered).
    return [
        make_bar((date.fromisoformat(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])))
        for r in orjson.loads(text)
    ]


def read_bars(conn, symbol: str, start: date, end: date, limit: int | None = None) -> list[DailyBar]:
    inner = (
        "SELECT day, open, high, low, close, volume FROM daily_bars"
        " WHERE symbol = :symbol AND day BETWEEN :start AND :end ORDER BY day"
    )
    if limit is not None:
        inner += f" LIMIT {int(limit)}"
    rows = conn.run(f"SELECT {_ROWS_AS_JSON} FROM ({inner}) AS page", symbol=symbol, start=start, end=end)
    return _bars_from_json(rows[0][0])


def _each_symbol(conn, values: dict, sql_type: str, clause: str, **params) -> dict[str, list[DailyBar]]:
    """Bars of many symbols in one query: for each symbol, a LATERAL index scan of
    its rows with ``clause``, in which ``w.v`` is that symbol's ``values`` entry."""
    if not values:
        return {}
    symbols = sorted(values)
    rows = conn.run(
        f"""
        SELECT w.symbol, (SELECT {_ROWS_AS_JSON} FROM (
            SELECT day, open, high, low, close, volume FROM daily_bars b
            WHERE b.symbol = w.symbol {clause}) AS picked)
        FROM unnest(CAST(:symbols AS text[]), CAST(:values AS {sql_type}[])) AS w(symbol, v)
        """,
        symbols=symbols,
        values=[values[s] for s in symbols],
        **params,
    )
    return {symbol: _bars_from_json(text) for symbol, text in rows}


def read_latest(conn, sessions: dict[str, int]) -> dict[str, list[DailyBar]]:
    """The last ``sessions[symbol]`` bars of each symbol, in one query: backwards from
    its newest day, reading only the rows asked for, however long the history is."""
    return _each_symbol(conn, {s: int(k) for s, k in sessions.items()}, "int", "ORDER BY day DESC LIMIT w.v")


def read_after(conn, after: dict[str, date], through: date) -> dict[str, list[DailyBar]]:
    """Each symbol's bars after ``after[symbol]`` up to ``through``, in one query."""
    return _each_symbol(conn, after, "date", "AND b.day > w.v AND b.day <= :through", through=through)


class SymbolInfo(NamedTuple):
    """What is stored of a symbol: its span, the basis of its rows ("raw" as traded, or
    "split" from before the migration) and whether its corporate actions are stored."""

    first: date
    last: date
    basis: str
    actions_loaded: bool


def symbol_info(conn, symbol: str) -> SymbolInfo | None:
    rows = conn.run("SELECT first_day, last_day, basis, actions_loaded FROM symbols WHERE symbol = :s", s=symbol)
    return SymbolInfo(*rows[0]) if rows else None


ACTION_COLUMNS = "symbol, kind, day, split_from, split_to, amount, dividend_type, currency, prev_close, prev_day, ref, adjustment_type"


def read_actions(conn, symbols: list[str]) -> dict[str, list]:
    """Every stored split and dividend of each symbol, oldest first, in one query."""
    from shared.adjustment import CorporateAction

    out: dict[str, list] = {s: [] for s in symbols}
    if not symbols:
        return out
    rows = conn.run(
        f"SELECT {ACTION_COLUMNS} FROM corporate_actions WHERE symbol = ANY(:symbols) ORDER BY symbol, day, kind, ref",
        symbols=list(symbols),
    )
    for row in rows:
        out[row[0]].append(CorporateAction(*row))
    return out


STATE_COLUMNS = "symbol, day, bar_count, closes, bars, ema, gain, loss, splits"


def read_states(conn, symbols: list[str]):
    """The indicator state of each symbol that has one (``shared.indicators``), in one query."""
    from shared.indicators import Bar, IndicatorState, unpack

    if not symbols:
        return {}
    rows = conn.run(f"SELECT {STATE_COLUMNS} FROM indicator_states WHERE symbol = ANY(:symbols)", symbols=list(symbols))
    out = {}
    for symbol, day, count, closes, bars, ema, gain, loss, splits in rows:
        recent = tuple(Bar(date.fromisoformat(b[0]), *b[1:]) for b in orjson.loads(bars))
        out[symbol] = IndicatorState(
            symbol, day, count, unpack(closes), recent, unpack(ema), unpack(gain), unpack(loss), splits
        )
    return out


def symbol_bases(conn, symbols: list[str]) -> dict[str, tuple[str, bool]]:
    """Each symbol's (basis, actions stored), in one query."""
    if not symbols:
        return {}
    rows = conn.run(
        "SELECT symbol, basis, actions_loaded FROM symbols WHERE symbol = ANY(:symbols)", symbols=list(symbols)
    )
    return {s: (b, loaded) for s, b, loaded in rows}


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached (or was unreachable moments ago)."""


class Database:
    """One lazily opened connection per container, migrated on first use.

    A broken connection is dropped and reopened once; while the server is
    unreachable, calls fail fast with ``DatabaseUnavailable`` for a few seconds.
    ``url`` may be a function that makes it (reading the password from Secrets
    Manager): it is called at the first connection, so that failing is PostgreSQL
    being unavailable too, not a failure at start.
    """

    def __init__(self, url, timeout_s: float, health=None):
        from shared.health import DependencyHealth

        self._url = url
        self.timeout_s = timeout_s
        self.health = health or DependencyHealth("PostgreSQL")
        self._conn: Any = None  # a pg8000 connection (pg8000 ships no types)
        # One connection: threads that share it (a refresh's lake reads) take turns.
        self._lock = threading.RLock()

    @property
    def url(self) -> str:
        if callable(self._url):
            self._url = self._url()
        return self._url

    def _connect(self):
        conn = connect(self.url, self.timeout_s)
        migrate(conn)
        return conn

    def run(self, work):
        """``work(conn)`` with a healthy connection, or ``DatabaseUnavailable``."""
        if not self.health.available():
            raise DatabaseUnavailable("PostgreSQL was unreachable moments ago")
        with self._lock:
            return self._run(work)

    def _run(self, work):
        import struct

        import pg8000.exceptions

        for attempt in (1, 2):
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return work(self._conn)
            except (pg8000.exceptions.InterfaceError, OSError, EOFError, struct.error) as exc:
                # Unreachable, too slow, or a server that does not speak PostgreSQL's protocol.
                self.close()
                if attempt == 2:
                    self.health.failed(exc)
                    raise DatabaseUnavailable(str(exc)) from exc
            except pg8000.exceptions.DatabaseError as exc:
                # The server refused (too many connections, shutting down, ...): not ours to retry.
                code = exc.args[0].get("C", "") if exc.args and isinstance(exc.args[0], dict) else ""
                if code.startswith(("08", "53", "57")):  # connection, resources, operator intervention
                    self.close()
                    self.health.failed(exc)
                    raise DatabaseUnavailable(str(exc)) from exc
                raise
            except Exception as exc:
                if self._conn is None:  # failed while connecting (e.g. the password's secret): unavailable
                    self.health.failed(exc)
                    raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
                raise

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # noqa: BLE001 - it is being thrown away anyway
                log.debug("closing a broken PostgreSQL connection: %s", exc)
            self._conn = None
