"""Ticker symbols as users type them and as Polygon spells them."""

from __future__ import annotations

import re

from shared.errors import bad_request

# Class shares use a dot (BRK.B, BF.B); a few tickers carry digits, and some a
# lower-case letter (preferred shares: KIMpL). The vendor's tickers are
# case-sensitive, so a symbol typed all in lower case is upper-cased (aapl ->
# AAPL) and one with any upper-case letter is kept exactly as given (KIMpL; KIMPL
# is another, unknown ticker). The OpenAPI documents use this very pattern.
SYMBOL_PATTERN = r"^[A-Za-z][A-Za-z0-9]{0,5}(\.[A-Za-z0-9]{1,3})?$"
# A list: symbols separated by commas, spaces around them and empty parts allowed.
SYMBOLS_PATTERN = r"^[A-Za-z0-9., ]*$"
# Applied with fullmatch: "$" alone also matches before a trailing newline (AAPL\n).
_SYMBOL = re.compile(SYMBOL_PATTERN)


def parse_symbol(raw: str | None, name: str = "symbol") -> str:
    if raw is None or not raw.strip():
        raise bad_request("missing_symbol", f"query parameter '{name}' is required, e.g. {name}=AAPL")
    if not _SYMBOL.fullmatch(raw):
        raise bad_request(
            "invalid_symbol",
            f"{raw!r} is not a ticker symbol: expected 1-6 letters or digits, optionally a class suffix such as BRK.B",
        )
    return normalize(raw)


def normalize(symbol: str) -> str:
    """``aapl`` -> ``AAPL``; ``KIMpL``, ``Brk.b`` and ``AAPL`` as they are."""
    return symbol.upper() if symbol == symbol.lower() else symbol


def parse_symbol_list(raw: str | None, limit: int) -> list[str]:
    """A comma-separated list, de-duplicated in the order given."""
    if raw is None or not raw.strip():
        raise bad_request("missing_symbol", "query parameter 'symbols' is required, e.g. symbols=AAPL,MSFT")
    symbols: list[str] = []
    for part in raw.split(","):
        if not part.strip():
            continue
        symbol = parse_symbol(part.strip(), "symbols")
        if symbol not in symbols:
            symbols.append(symbol)
    if not symbols:
        raise bad_request("missing_symbol", "query parameter 'symbols' names no symbol")
    if len(symbols) > limit:
        raise bad_request("too_many_symbols", f"at most {limit} symbols per request, got {len(symbols)}")
    return symbols
