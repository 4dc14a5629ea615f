"""Writing the recent tier: ingestion only (the serving Lambdas only read it)."""

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
