"""Writing the recent tier: ingestion and the daily update only (the serving APIs only read it)."""

from __future__ import annotations

from datetime import date

from shared.bars import DailyBar


def _upsert(conn, rows: list[tuple[str, DailyBar]]) -> list[str]:
    """Insert or correct ``(symbol, bar)`` rows in one statement; rows already equal
    are not touched. The symbol of each row that changed (new or different)."""
    if not rows:
        return []
    changed = conn.run(
        """
        INSERT INTO daily_bars (symbol, day, open, high, low, close, volume)
        SELECT * FROM unnest(CAST(:symbols AS text[]), CAST(:days AS date[]), CAST(:opens AS float8[]),
                             CAST(:highs AS float8[]), CAST(:lows AS float8[]), CAST(:closes AS float8[]),
                             CAST(:volumes AS float8[]))
        ON CONFLICT (symbol, day) DO UPDATE SET
            open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
            close = EXCLUDED.close, volume = EXCLUDED.volume
        WHERE (daily_bars.open, daily_bars.high, daily_bars.low, daily_bars.close, daily_bars.volume)
            IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
        RETURNING symbol
        """,
        symbols=[symbol for symbol, _ in rows],
        days=[b.day for _, b in rows],
        opens=[float(b.open) for _, b in rows],
        highs=[float(b.high) for _, b in rows],
        lows=[float(b.low) for _, b in rows],
        closes=[float(b.close) for _, b in rows],
        volumes=[float(b.volume) for _, b in rows],
    )
    return [row[0] for row in changed]


def upsert_bars(conn, symbol: str, bars: list[DailyBar]) -> int:
    """One symbol's bars, 1,000 rows a statement. Returns rows changed."""
    return sum(len(_upsert(conn, [(symbol, b) for b in bars[i : i + 1000]])) for i in range(0, len(bars), 1000))


def record_symbol(
    conn, symbol: str, first_day: date, last_day: date, basis: str = "raw", actions_loaded: bool = True
) -> None:
    """A symbol's span, and what its rows are (``basis``) and whether its actions are stored."""
    conn.run(
        """
        INSERT INTO symbols (symbol, first_day, last_day, basis, actions_loaded) VALUES (:s, :f, :l, :b, :a)
        ON CONFLICT (symbol) DO UPDATE SET
            first_day = LEAST(symbols.first_day, EXCLUDED.first_day),
            last_day = GREATEST(symbols.last_day, EXCLUDED.last_day),
            basis = EXCLUDED.basis,
            actions_loaded = symbols.actions_loaded OR EXCLUDED.actions_loaded,
            updated_at = now()
        WHERE symbols.first_day > EXCLUDED.first_day OR symbols.last_day < EXCLUDED.last_day
            OR symbols.basis <> EXCLUDED.basis OR (EXCLUDED.actions_loaded AND NOT symbols.actions_loaded)
        """,
        s=symbol,
        f=first_day,
        l=last_day,
        b=basis,
        a=actions_loaded,
    )


def upsert_actions(conn, actions: list) -> int:
    """Splits and dividends, in one transaction: for each (symbol, kind, day) they cover,
    what was stored under other ids (the deprecated endpoints', or a correction since)
    is replaced, so nothing is doubled (``shared.adjustment.merge_actions``); an action
    known already is updated only where it differs (a dividend's previous close, learnt
    later). Returns rows changed (deleted or written)."""
    if not actions:
        return 0
    from shared.adjustment import CorporateAction

    # One row per key: a statement cannot insert and then update the same row.
    actions = list({(a.symbol, a.kind, a.day, a.ref): a for a in actions}.values())
    columns = dict(zip(CorporateAction._fields, ([list(c) for c in zip(*actions)]), strict=True))
    conn.run("BEGIN")
    try:
        replaced = conn.run(
            """
            DELETE FROM corporate_actions AS c
            USING unnest(CAST(:symbol AS text[]), CAST(:kind AS text[]), CAST(:day AS date[]),
                         CAST(:ref AS text[])) AS n(symbol, kind, day, ref)
            WHERE (c.symbol, c.kind, c.day) = (n.symbol, n.kind, n.day)
              AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:symbol AS text[]), CAST(:ref AS text[])) AS k(symbol, ref)
                              WHERE (k.symbol, k.ref) = (c.symbol, c.ref))
            RETURNING 1
            """,
            symbol=columns["symbol"],
            kind=columns["kind"],
            day=columns["day"],
            ref=columns["ref"],
        )
        written = conn.run(
            """
            INSERT INTO corporate_actions (symbol, kind, day, split_from, split_to, amount, dividend_type, currency,
                                           prev_close, prev_day, ref, adjustment_type)
            SELECT * FROM unnest(CAST(:symbol AS text[]), CAST(:kind AS text[]), CAST(:day AS date[]),
                                 CAST(:split_from AS float8[]), CAST(:split_to AS float8[]),
                                 CAST(:amount AS float8[]), CAST(:dividend_type AS text[]),
                                 CAST(:currency AS text[]), CAST(:prev_close AS float8[]), CAST(:prev_day AS date[]),
                                 CAST(:ref AS text[]), CAST(:adjustment_type AS text[]))
            ON CONFLICT (symbol, kind, day, ref) DO UPDATE SET
                split_from = EXCLUDED.split_from, split_to = EXCLUDED.split_to, amount = EXCLUDED.amount,
                dividend_type = EXCLUDED.dividend_type, currency = EXCLUDED.currency,
                prev_close = COALESCE(EXCLUDED.prev_close, corporate_actions.prev_close),
                prev_day = COALESCE(EXCLUDED.prev_day, corporate_actions.prev_day),
                adjustment_type = COALESCE(EXCLUDED.adjustment_type, corporate_actions.adjustment_type)
            WHERE (corporate_actions.split_from, corporate_actions.split_to, corporate_actions.amount,
                   corporate_actions.dividend_type, corporate_actions.currency, corporate_actions.prev_close,
                   corporate_actions.adjustment_type) IS DISTINCT FROM
                  (EXCLUDED.split_from, EXCLUDED.split_to, EXCLUDED.amount, EXCLUDED.dividend_type,
                   EXCLUDED.currency, COALESCE(EXCLUDED.prev_close, corporate_actions.prev_close),
                   COALESCE(EXCLUDED.adjustment_type, corporate_actions.adjustment_type))
            RETURNING 1
            """,
            **columns,
        )
        conn.run("COMMIT")
    except Exception:
        conn.run("ROLLBACK")
        raise
    return len(replaced) + len(written)


def mark_actions_loaded(conn, symbols: list[str]) -> None:
    conn.run("UPDATE symbols SET actions_loaded = true WHERE symbol = ANY(:s) AND NOT actions_loaded", s=symbols)


def prune(conn, before: date) -> int:
    """Drop bars older than the recent window; the lake keeps them."""
    rows = conn.run("DELETE FROM daily_bars WHERE day < :before RETURNING 1", before=before)
    return len(rows)


def upsert_many(conn, bars: dict[str, DailyBar]) -> set[str]:
    """One bar for each of many symbols (a day's bars), in one statement; the symbols
    whose row changed (new or different)."""
    return set(_upsert(conn, sorted(bars.items())))


def extend_spans(conn, last_days: dict[str, date]) -> None:
    """Move known symbols' last day forward (never back), in one statement."""
    if not last_days:
        return
    symbols = sorted(last_days)
    conn.run(
        """
        UPDATE symbols SET last_day = new.day, updated_at = now()
        FROM unnest(CAST(:symbols AS text[]), CAST(:days AS date[])) AS new(symbol, day)
        WHERE symbols.symbol = new.symbol AND symbols.last_day < new.day
        """,
        symbols=symbols,
        days=[last_days[s] for s in symbols],
    )
