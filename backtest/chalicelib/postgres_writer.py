"""Writing the recent tier: ingestion and the daily update only (the serving APIs only read it)."""

from __future__ import annotations

from datetime import date

from shared.bars import DailyBar


def upsert_bars(conn, symbol: str, bars: list[DailyBar]) -> int:
    """Insert or correct bars; rows that are already equal are not touched. Returns rows changed."""
    changed = 0
    for chunk_start in range(0, len(bars), 1000):
        chunk = bars[chunk_start : chunk_start + 1000]
        rows = conn.run(
            """
            INSERT INTO daily_bars (symbol, day, open, high, low, close, volume)
            SELECT :symbol, * FROM unnest(CAST(:days AS date[]), CAST(:opens AS float8[]), CAST(:highs AS float8[]),
                                          CAST(:lows AS float8[]), CAST(:closes AS float8[]), CAST(:volumes AS int8[]))
            ON CONFLICT (symbol, day) DO UPDATE SET
                open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
                close = EXCLUDED.close, volume = EXCLUDED.volume
            WHERE (daily_bars.open, daily_bars.high, daily_bars.low, daily_bars.close, daily_bars.volume)
                IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
            RETURNING 1
            """,
            symbol=symbol,
            days=[b.day for b in chunk],
            opens=[float(b.open) for b in chunk],
            highs=[float(b.high) for b in chunk],
            lows=[float(b.low) for b in chunk],
            closes=[float(b.close) for b in chunk],
            volumes=[int(b.volume) for b in chunk],
        )
        changed += len(rows)
    return changed


def record_symbol(conn, symbol: str, first_day: date, last_day: date) -> None:
    conn.run(
        """
        INSERT INTO symbols (symbol, first_day, last_day) VALUES (:s, :f, :l)
        ON CONFLICT (symbol) DO UPDATE SET
            first_day = LEAST(symbols.first_day, EXCLUDED.first_day),
            last_day = GREATEST(symbols.last_day, EXCLUDED.last_day),
            updated_at = now()
        WHERE symbols.first_day > EXCLUDED.first_day OR symbols.last_day < EXCLUDED.last_day
        """,
        s=symbol,
        f=first_day,
        l=last_day,
    )


def prune(conn, before: date) -> int:
    """Drop bars older than the recent window; the lake keeps them."""
    rows = conn.run("DELETE FROM daily_bars WHERE day < :before RETURNING 1", before=before)
    return len(rows)


def upsert_many(conn, bars: dict[str, DailyBar]) -> set[str]:
    """One bar for each of many symbols (a day's bars), in one statement; the symbols
    whose row changed (new or different)."""
    if not bars:
        return set()
    symbols = sorted(bars)
    rows = conn.run(
        """
        INSERT INTO daily_bars (symbol, day, open, high, low, close, volume)
        SELECT * FROM unnest(CAST(:symbols AS text[]), CAST(:days AS date[]), CAST(:opens AS float8[]),
                             CAST(:highs AS float8[]), CAST(:lows AS float8[]), CAST(:closes AS float8[]),
                             CAST(:volumes AS int8[]))
        ON CONFLICT (symbol, day) DO UPDATE SET
            open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
            close = EXCLUDED.close, volume = EXCLUDED.volume
        WHERE (daily_bars.open, daily_bars.high, daily_bars.low, daily_bars.close, daily_bars.volume)
            IS DISTINCT FROM (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume)
        RETURNING symbol
        """,
        symbols=symbols,
        days=[bars[s].day for s in symbols],
        opens=[float(bars[s].open) for s in symbols],
        highs=[float(bars[s].high) for s in symbols],
        lows=[float(bars[s].low) for s in symbols],
        closes=[float(bars[s].close) for s in symbols],
        volumes=[int(bars[s].volume) for s in symbols],
    )
    return {row[0] for row in rows}


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
