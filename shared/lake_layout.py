"""Where a symbol's history lies in the lake (``LAKE_URI``): the backtest app reads and
writes it there; the alerts API asks whether it exists (a rule may only watch a symbol
the product keeps history for)."""

from __future__ import annotations

TABLE = "daily_bars"
ACTIONS = "corporate_actions"
FILE = "data.parquet"


def bars_key(symbol: str) -> str:
    return f"{TABLE}/symbol={symbol}/{FILE}"


def actions_key(symbol: str) -> str:
    return f"{ACTIONS}/symbol={symbol}/{FILE}"
