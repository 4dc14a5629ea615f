"""The quote API's OpenAPI 3.1 document, built from the constants its validation uses."""

from __future__ import annotations

from shared import openapi as oa
from shared.quotes import QUOTE_FAILURE_CODES, UPSTREAM_FAILURE_CODES
from shared.symbols import SYMBOLS_PATTERN

# Symbols per batch request (app.py enforces it with this constant).
MAX_SYMBOLS = 50

NUMBER_OR_NULL = {"type": ["number", "null"]}
QUOTE = {
    "type": "object",
    "required": [
        "symbol",
        "price",
        "as_of",
        "source",
        "prev_close",
        "change",
        "change_pct",
        "day",
        "stale",
        "delayed",
        "delay_min",
        "cache",
    ],
    "additionalProperties": False,
    "properties": {
        "symbol": {"type": "string"},
        "price": {"type": "number", "exclusiveMinimum": 0},
        "as_of": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "when this was the price: the trade's time, the end of the minute bar, the snapshot's "
            "update time (day), or the previous session's close (prev_close)",
        },
        "source": {"enum": ["last_trade", "minute", "day", "prev_close"]},
        "prev_close": NUMBER_OR_NULL,
        "change": NUMBER_OR_NULL,
        "change_pct": NUMBER_OR_NULL,
        "day": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["open", "high", "low", "close", "volume"],
                    "additionalProperties": False,
                    "properties": {
                        "open": NUMBER_OR_NULL,
                        "high": NUMBER_OR_NULL,
                        "low": NUMBER_OR_NULL,
                        "close": {"type": "number"},
                        "volume": {"type": "number", "description": "a float: the vendor's volumes can be fractional"},
                    },
                },
                {"type": "null"},
            ]
        },
        "stale": {"type": "boolean", "description": "the last known value: the vendor could not be asked"},
        "delayed": {
            "type": "boolean",
            "description": "the vendor said the snapshot is delayed, or POLYGON_DELAY_MIN says the plan is",
        },
        "delay_min": {"type": "integer", "minimum": 0},
        "cache": {
            "type": "object",
            "required": ["status", "age_s"],
            "additionalProperties": False,
            "properties": {
                "status": {"enum": ["hit", "miss", "stale", "bypass"]},
                "age_s": {"type": "number", "minimum": 0},
            },
        },
    },
}
BATCH = {
    "type": "object",
    "required": ["results", "errors"],
    "additionalProperties": False,
    "properties": {
        "results": {"type": "array", "items": {"$ref": "#/components/schemas/Quote"}},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["symbol", "code", "message"],
                "properties": {
                    "symbol": {"type": "string"},
                    "code": {"enum": list(QUOTE_FAILURE_CODES)},
                    "message": {"type": "string"},
                    "dependency": {"enum": ["vendor"], "description": "for a 503's codes: the vendor failed"},
                },
            },
        },
    },
}
UPSTREAM = list(UPSTREAM_FAILURE_CODES)


def build() -> dict:
    operation = {
        "operationId": "getQuote",
        "summary": "The latest price of one symbol (symbol=) or of up to 50 (symbols=)",
        "parameters": [
            {
                "name": "symbol",
                "in": "query",
                "required": False,
                "schema": oa.SYMBOL,
                "description": "one symbol; give this or symbols",
            },
            {
                "name": "symbols",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "pattern": SYMBOLS_PATTERN},
                "description": f"up to {MAX_SYMBOLS} symbols separated by commas; one answer each, in results or errors",
            },
        ],
        "responses": {
            "200": {
                "description": "a quote (symbol=), or results and errors (symbols=)",
                "headers": {"Cache-Control": oa.CACHE_CONTROL},
                "content": oa.json_content(
                    {"oneOf": [{"$ref": "#/components/schemas/Quote"}, {"$ref": "#/components/schemas/QuoteBatch"}]}
                ),
            },
            "400": oa.error_answer(
                "bad input", ["missing_symbol", "invalid_symbol", "too_many_symbols", "conflicting_parameters"]
            ),
            "404": oa.error_answer("Polygon does not know the symbol", ["unknown_symbol"]),
            "503": oa.unavailable_answer(
                "Polygon failed or may not be asked, and no last known value exists; or (on AWS) the parameter "
                "store could not be read at start",
                [*UPSTREAM, "configuration_unavailable"],
            ),
        },
    }
    paths = {
        "/api/quote": {"get": operation},
    }
    return oa.document(
        "quote",
        "Quote service",
        "The latest price of a symbol on demand, from Polygon's snapshot behind a shared Redis cache.",
        paths,
        {"Quote": QUOTE, "QuoteBatch": BATCH},
    )


DOCUMENT = build()
